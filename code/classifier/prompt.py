"""The prompt the GAIR task classifier was trained on, and how its reply is read.

The 13B GAIR/ReAlign-Task-Classifier only works well when it sees exactly the prompt it
was fine-tuned with, so the wording below is the original project's, kept byte for byte
(trailing space after "below:" included). The task list inside it is built from
`constant.TASKS`, which holds the same names in the same order; tests compare the result
with a fixture copy of the original template.
"""

from realign.constant import DEFAULT_TASK, TASKS

_HEAD = (
    "\n"
    "You will receive a user's query. Additionally, you are given some pre-defined tasks below: \n"
    "\n"
    "[Existing tasks start]\n"
)

_TAIL = (
    "[Existing tasks end]\n"
    "\n"
    "You objective is to choose the most appropriate task that can reflect the high-level "
    "intention of this query. You should first clearly give out your choice. Your choice should "
    "exactly match one of the task names provided above, without any modification. Do not "
    "include the task description in your choice.\n"
    "\n"
    "Your output should be just the task name.\n"
    "\n"
    "User's query is below:\n"
    "[User's query start]\n"
    "{input}\n"
    "[User's query end]\n"
    "\n"
    "Task name:\n"
    "\n"
)

PROMPT_INPUT_FOR_TASK_CLS = _HEAD + "".join(task + "\n" for task in TASKS) + _TAIL

# Sampling settings of the original example: greedy, short answer.
TEMPERATURE = 0.0
TOP_P = 1.0
MAX_TOKENS = 50

_TASK_SET = frozenset(TASKS)


def build_prompt(query):
    """The full classifier prompt for one user query (str.format, as the original does)."""
    return PROMPT_INPUT_FOR_TASK_CLS.format(input=query)


def parse_task(reply):
    """The model's reply, stripped, if it is a task name; otherwise the default task."""
    name = (reply or "").strip()
    return name if name in _TASK_SET else DEFAULT_TASK
