"""The one place that knows about tasks: the 46 task names, what each looks like,
how an ideal answer of each is laid out, and which tasks get retrieval / rewriting.

Data only. Every other module asks this one; nothing else spells a task name.
"""

# The 46 tasks, in the order of the task classifier's prompt (a fact of the spec).
TASKS = (
    "question_generation",
    "story_generation",
    "poem_generation",
    "email_generation",
    "data_generation",
    "advice_giving",
    "recommendations",
    "how_to_generation",
    "planning",
    "instructional_rewriting",
    "language_polishing",
    "paraphrasing",
    "text_correction",
    "code_correction",
    "code_simplification",
    "information_extraction",
    "keywords_extraction",
    "table_extraction",
    "title_generation",
    "text_summarization",
    "note_summarization",
    "explain_code",
    "explain_answer",
    "text_to_text_translation",
    "text_to_code_translation",
    "code_to_code_translation",
    "code_to_text_translation",
    "open_qa",
    "closed_qa",
    "fill_in_the_blank",
    "fact_verification",
    "math_puzzles",
    "language_learning_questions",
    "natural_language_learning_tutor",
    "exam_problem_solving_tutor",
    "ml_ai_language_model_tutor",
    "general_classification",
    "ordering",
    "sentiment_analysis",
    "code_language_classification",
    "language_classification",
    "topic_classification",
    "value_judgement",
    "rejecting",
    "roleplay",
    "default",
)
TASK_SET = frozenset(TASKS)  # for "is this a task name?"

DEFAULT_TASK = "default"

# Tasks whose responses are left as they are: creative or free-form output where a fixed
# layout would hurt, plus the catch-all `default`.
NOT_REWRITTEN_TASKS = frozenset({
    "advice_giving",
    "code_simplification",
    "note_summarization",
    "paraphrasing",
    "poem_generation",
    "roleplay",
    "story_generation",
    "table_extraction",
    "text_summarization",
    "title_generation",
    "default",
})

# Tasks whose response is rewritten into the task's format (35 tasks).
REWRITE_TASKS = tuple(t for t in TASKS if t not in NOT_REWRITTEN_TASKS)

# Knowledge-heavy tasks: retrieval.py fetches evidence for these, reformat.py uses it.
RAG_TASKS = frozenset({
    "how_to_generation",
    "open_qa",
    "fact_verification",
    "recommendations",
    "explain_answer",
})

# Exam-like tasks whose final answer must survive a rewrite (used by the filter rules).
EXAM_TASKS = frozenset({
    "math_puzzles",
    "exam_problem_solving_tutor",
})

# What instructions of each task look like (used by classifiers, docs and the report).
TASK_DESCRIPTIONS = {
    "question_generation": (
        "Asks for questions to be written: quiz or exam items, interview questions, discussion "
        "prompts, or questions about a supplied text. The output is the questions themselves; "
        "a request to answer a question belongs to a question-answering task instead."
    ),
    "story_generation": (
        "Asks for a piece of narrative fiction: a short story, fable, fairy tale, scene, or the "
        "continuation of a plot. Verse goes to poem_generation; speaking in a character's voice "
        "within the conversation goes to roleplay."
    ),
    "poem_generation": (
        "Asks for verse of any kind: poems, haiku, limericks, sonnets, rhymes, or song lyrics. "
        "Prose fiction goes to story_generation."
    ),
    "email_generation": (
        "Asks for a message addressed to a recipient to be drafted: an email, letter, cover "
        "letter, memo, invitation, or reply. Reworking an existing message under a stated "
        "constraint is instructional_rewriting; making it read better is language_polishing."
    ),
    "data_generation": (
        "Asks for data rather than prose: lists of items, example sentences, synthetic records, "
        "sample datasets, test inputs, or made-up names and values. Suggestions for the user to "
        "choose from are recommendations; generated questions are question_generation."
    ),
    "advice_giving": (
        "Describes a personal situation or general goal and asks for guidance, tips, or what to "
        "do (health, career, relationships, study habits, money). A concrete step-by-step "
        "procedure is how_to_generation; naming specific items to pick is recommendations."
    ),
    "recommendations": (
        "Asks for specific items to be suggested: books, films, products, tools, courses, "
        "destinations, restaurants, often under stated preferences or constraints. General "
        "guidance on behaviour or decisions is advice_giving."
    ),
    "how_to_generation": (
        "Asks how to carry out a concrete practical task and expects a procedure: instructions, "
        "a recipe, installation or setup steps, a tutorial. Asking why something is so is "
        "explain_answer; asking for a program from a spec is text_to_code_translation."
    ),
    "planning": (
        "Asks for a plan laid out over time or resources: an itinerary, study plan, workout "
        "programme, project timeline, event agenda, meal plan, or budget. A single procedure for "
        "finishing one task is how_to_generation."
    ),
    "instructional_rewriting": (
        "Supplies a text and asks for it to be rewritten under a stated constraint: a different "
        "tone, style, audience, length, point of view, or layout (e.g. make it formal, turn it "
        "into bullets, simplify it for a child). Fixing errors is text_correction, general "
        "improvement is language_polishing, same meaning in new words is paraphrasing."
    ),
    "language_polishing": (
        "Supplies a text and asks for it to be improved in quality (more fluent, professional, "
        "clear, or concise) without naming a specific transformation. Fixing outright mistakes "
        "is text_correction; a named change of tone, length, or audience is "
        "instructional_rewriting."
    ),
    "paraphrasing": (
        "Asks for a given sentence or passage to be restated in different words while keeping "
        "its meaning and roughly its length and register. A deliberate change of style or "
        "audience is instructional_rewriting."
    ),
    "text_correction": (
        "Supplies natural-language text and asks for its errors to be fixed: spelling, grammar, "
        "punctuation, or wrong word usage. Fixing code is code_correction; improving text that "
        "has no real errors is language_polishing."
    ),
    "code_correction": (
        "Supplies code, often with an error message or wrong output, and asks for the bug to be "
        "found and fixed or for why it fails. Making working code shorter or cleaner is "
        "code_simplification."
    ),
    "code_simplification": (
        "Supplies working code and asks for it to be made simpler, shorter, more readable, more "
        "idiomatic, or faster without changing what it does. Code with a bug to fix is "
        "code_correction."
    ),
    "information_extraction": (
        "Supplies a text and asks for specific pieces of information to be pulled out: names, "
        "dates, entities, amounts, relations, or answers to named fields. Key words or phrases "
        "are keywords_extraction; laying extracted data out as a table is table_extraction."
    ),
    "keywords_extraction": (
        "Asks for the key words, key phrases, or tags that best capture a supplied text. "
        "Specific facts or fields from the text are information_extraction."
    ),
    "table_extraction": (
        "Asks for information from a supplied text or data to be arranged as a table, or for a "
        "table to be built from given content. Pulling out facts without a table is "
        "information_extraction."
    ),
    "title_generation": (
        "Asks for a title, headline, name, tagline, or slogan for a given text, product, "
        "project, or idea."
    ),
    "text_summarization": (
        "Supplies an article, passage, or document and asks for a shorter version that keeps "
        "its main points. Condensing rough notes, transcripts, or minutes into organised notes "
        "is note_summarization."
    ),
    "note_summarization": (
        "Supplies notes, a meeting or lecture transcript, or minutes and asks for them to be "
        "turned into concise, organised notes or bullet points. Summarising a finished article "
        "or document is text_summarization."
    ),
    "explain_code": (
        "Supplies code and asks how or why it works: a step-by-step walk-through of what each "
        "part does, why it gives a certain output, or what a construct means. A "
        "documentation-style description of the code's purpose (docstring, comments, summary) "
        "is code_to_text_translation."
    ),
    "explain_answer": (
        "Asks why or how something is the case, asks for a concept or phenomenon to be "
        "explained, or asks for the reasoning behind a given answer. A short factual look-up "
        "(who, when, where, which) is open_qa; explaining supplied code is explain_code."
    ),
    "text_to_text_translation": (
        "Asks for text to be translated from one human language into another. Converting code "
        "between programming languages is code_to_code_translation."
    ),
    "text_to_code_translation": (
        "Asks for code written from a natural-language specification: a function, script, "
        "class, SQL query, regular expression, or shell command that does what is described. "
        "Fixing supplied code is code_correction; porting supplied code to another language is "
        "code_to_code_translation."
    ),
    "code_to_code_translation": (
        "Supplies code and asks for the same behaviour in another programming language, "
        "framework, library, or language version."
    ),
    "code_to_text_translation": (
        "Supplies code and asks for a natural-language account of it: what it does, a summary, "
        "a docstring, comments, or documentation. A detailed step-by-step explanation of how "
        "it works is explain_code."
    ),
    "open_qa": (
        "A factual question answered from general world knowledge, with no passage or context "
        "supplied by the user (who, what, when, where, how many). If a passage is given to "
        "answer from, it is closed_qa; if the user wants the reasons why or how, it is "
        "explain_answer."
    ),
    "closed_qa": (
        "A question to be answered from a passage, document, table, or other context that the "
        "user supplies in the query. The same question without supplied context is open_qa."
    ),
    "fill_in_the_blank": (
        "Supplies a sentence or text with gaps (blanks, underscores, [MASK]) and asks for the "
        "missing words; includes cloze exercises and completing an unfinished sentence."
    ),
    "fact_verification": (
        "States a claim and asks whether it is true, false, accurate, or a myth, or asks for a "
        "statement to be fact-checked. An open question with no claim to judge is open_qa."
    ),
    "math_puzzles": (
        "Arithmetic, algebra, geometry, probability and other mathematical problems, word "
        "problems, and number or logic puzzles that call for calculation and a definite answer. "
        "Exam-style problems in physics, chemistry, biology or other subjects are "
        "exam_problem_solving_tutor."
    ),
    "language_learning_questions": (
        "A specific question about a human language: a grammar rule, the meaning or usage of a "
        "word or idiom, pronunciation, spelling, or the difference between similar expressions. "
        "Asking to be taught or to practise the language is natural_language_learning_tutor."
    ),
    "natural_language_learning_tutor": (
        "Asks to be taught or to practise a human language: a lesson, vocabulary drills, "
        "conversation practice, exercises with feedback, or a plan for learning the language. "
        "A single point question about grammar or a word is language_learning_questions."
    ),
    "exam_problem_solving_tutor": (
        "Exam- or homework-style problems in science and other school or university subjects "
        "(physics, chemistry, biology, economics, law, history and so on), often multiple "
        "choice, that want a worked solution and an answer. Pure mathematics and number puzzles "
        "are math_puzzles."
    ),
    "ml_ai_language_model_tutor": (
        "Questions about machine learning, artificial intelligence, neural networks, and "
        "language models: concepts, algorithms, training, evaluation, or how models like the "
        "assistant work. A request to write ML code is text_to_code_translation."
    ),
    "general_classification": (
        "Asks for given items to be sorted into given or implied classes (spam or not, animal "
        "or plant, fact or opinion, and so on) when the classes are not sentiment, topic, human "
        "language, or programming language, which have their own tasks."
    ),
    "ordering": (
        "Asks for given items to be sorted, ranked, or arranged in an order: by size, date, "
        "importance, alphabet, frequency, or preference."
    ),
    "sentiment_analysis": (
        "Asks for the sentiment, emotion, or attitude expressed in a given text (positive, "
        "negative, neutral, or a finer emotion label)."
    ),
    "code_language_classification": (
        "Supplies code and asks which programming language (or framework) it is written in."
    ),
    "language_classification": (
        "Supplies text and asks which human language it is written in."
    ),
    "topic_classification": (
        "Asks which topic, subject area, genre, or category a given text belongs to."
    ),
    "value_judgement": (
        "Asks for the assistant's opinion, preference, or evaluation, or for a moral or ethical "
        "judgement: whether something is right or wrong, good or bad, better or worse, or "
        "whether people should do it. A neutral factual question is open_qa."
    ),
    "rejecting": (
        "A request the assistant should decline: help with harm, violence, weapons, illegal "
        "activity, harassment, obtaining private personal data, or another clearly unsafe or "
        "unethical aim. The label follows from the request being unacceptable, not from its "
        "topic alone."
    ),
    "roleplay": (
        "Asks the assistant to act as a character, persona, or role (a historical figure, a "
        "fictional character, an interviewer, a Linux terminal) and reply in that voice. "
        "Writing a story about a character is story_generation."
    ),
    "default": (
        "Greetings, chit-chat, small talk, remarks about the conversation itself, and any "
        "request that fits none of the other tasks."
    ),
}

# How an ideal answer of each rewritten task is laid out (sent to the rewriting LLM).
TASK_FORMATS = {
    "question_generation": (
        "Open with one sentence saying what the questions cover or what they are for.\n"
        "Give the questions as a numbered list, one question per item.\n"
        "Group them under short bold headings when they span several topics or difficulty levels.\n"
        "If answers were given, place each one directly under its question, starting with \"Answer:\".\n"
        "Keep every question from the original response and add no commentary after the list."
    ),
    "email_generation": (
        "Start with a \"Subject:\" line that states the purpose of the message.\n"
        "Follow with a greeting line addressed to the recipient.\n"
        "Write the body in short paragraphs: purpose first, then details, then any request or next step.\n"
        "End with a closing phrase and the sender's name, or a placeholder such as [Your Name].\n"
        "Keep the requested tone and every detail of the original draft."
    ),
    "data_generation": (
        "Begin with one sentence naming what was generated and how many items there are.\n"
        "Present the items as a numbered list, or as a table when each item is a record with several fields.\n"
        "Give every item the same structure: the same fields in the same order.\n"
        "Put machine-readable data (JSON, CSV, SQL) inside a fenced code block tagged with its format.\n"
        "Keep all items from the original response and put no explanation between them."
    ),
    "recommendations": (
        "Open with one sentence restating what the user is looking for.\n"
        "List each recommendation as a numbered item: its name in bold, then one or two sentences on why it fits.\n"
        "Add useful details (author, year, price range, location) where the original or the evidence gives them.\n"
        "Use the supplied evidence where it is relevant; do not invent citations, sources, or details.\n"
        "Close with a short note on how to choose among the options."
    ),
    "how_to_generation": (
        "Open with one sentence stating the goal.\n"
        "If materials, tools, or prerequisites are needed, list them as bullets under a bold \"What you need\" heading.\n"
        "Give the procedure as a numbered list of steps in the order they are done, one action per step.\n"
        "Put commands or code in fenced code blocks inside the step that uses them.\n"
        "End with tips, warnings, or a way to check that it worked.\n"
        "Use the supplied evidence where it is relevant, without inventing citations or sources."
    ),
    "planning": (
        "Begin with one sentence summarising the plan's goal, duration, and main constraints.\n"
        "Organise the plan by time period or phase (Day 1, Week 2, Phase 3), each as a bold heading.\n"
        "Under each heading, list the activities as bullets, with times, durations, or amounts where known.\n"
        "Finish with a short bulleted list of practical notes (budget, preparation, what to adjust).\n"
        "Keep every item and figure from the original plan."
    ),
    "instructional_rewriting": (
        "Give the complete rewritten text first, meeting the user's stated constraint (tone, length, audience, layout).\n"
        "Use at most one short lead-in line before it, or none.\n"
        "Keep the content and facts of the source except where the instruction requires changing them.\n"
        "If the original response explained its changes, put that after the text as a short bullet list under \"Changes made\"."
    ),
    "language_polishing": (
        "Give the polished text first, as a complete passage ready to use.\n"
        "Keep the author's meaning, facts, and overall structure; improve word choice, flow, and concision.\n"
        "After the text, optionally list the main improvements as short bullets, one line each.\n"
        "Add no claims or content that were not in the source."
    ),
    "text_correction": (
        "Give the corrected text first, in full.\n"
        "Then, under a bold \"Corrections\" heading, list each change as a bullet: original wording -> corrected wording, with a brief reason.\n"
        "If the text had no errors, say so in one sentence and repeat it unchanged.\n"
        "Change nothing beyond what the corrections require."
    ),
    "code_correction": (
        "Start with one or two sentences naming the bug or bugs and their cause.\n"
        "Give the full corrected code in a fenced code block with the language tag.\n"
        "Then list each fix as a bullet: what was wrong, what changed, and why.\n"
        "Where it helps, show an example call and its expected output in a separate code block."
    ),
    "information_extraction": (
        "Give the extracted information directly, with at most a one-line introduction.\n"
        "Present it as bullets with a bold label per field (e.g. **Date:** ...), or as a table when there are several records with the same fields.\n"
        "Use the source's own wording for the values; mark anything the text does not give as \"Not stated\".\n"
        "Add nothing that the source text does not support."
    ),
    "keywords_extraction": (
        "Give the keywords as a bulleted list, most important first.\n"
        "Use the words or short phrases as they appear in the source text.\n"
        "Optionally follow with one sentence on what the keywords say about the text.\n"
        "Do not pad the list with generic words."
    ),
    "explain_code": (
        "Open with one or two sentences stating what the code does overall.\n"
        "Walk through the code in order as a numbered list, quoting each relevant line or block in inline code or a short fenced block before explaining it.\n"
        "Explain key ideas (algorithm, data structures, language features) where they first appear.\n"
        "Where the question concerns behaviour or output, show an example input and the resulting output.\n"
        "Finish with a short summary and any caveats or improvements the original mentions."
    ),
    "explain_answer": (
        "Start with a direct one- or two-sentence answer, with the key conclusion in bold.\n"
        "Follow with the explanation, split into short paragraphs or a numbered list of reasons or steps.\n"
        "Define technical terms when they first appear and add an example where it helps.\n"
        "Use the supplied evidence where it is relevant, without inventing citations or sources.\n"
        "End with a one-sentence summary of the main point."
    ),
    "text_to_text_translation": (
        "Give the translation first, on its own, with no preamble.\n"
        "Keep the source's paragraphs, line breaks, and formatting.\n"
        "If the original response offered alternatives or notes on word choice, add them after the translation as short bullets.\n"
        "Include romanization or pronunciation only if the user asked for it or the original gave it."
    ),
    "text_to_code_translation": (
        "Start with one sentence describing the approach.\n"
        "Give the complete code in a fenced code block with the language tag, including needed imports and brief comments.\n"
        "Then explain the key parts as a short bulleted or numbered list.\n"
        "Show an example of use and its expected output in a separate code block when it helps.\n"
        "Mention assumptions, dependencies, or edge cases at the end."
    ),
    "code_to_code_translation": (
        "Give the translated code first, in a fenced code block tagged with the target language.\n"
        "Keep the original's behaviour, names, and structure as far as the target language allows.\n"
        "Then list notable differences between the versions (replaced libraries, syntax, type handling) as bullets.\n"
        "Add a usage example in a separate code block if it helps."
    ),
    "code_to_text_translation": (
        "Open with one sentence stating the purpose of the code.\n"
        "Describe its inputs, outputs, and main behaviour in a short paragraph or bulleted list.\n"
        "If a docstring or comments were requested, give them in a fenced code block in the code's language.\n"
        "Mention side effects, requirements, or limitations at the end."
    ),
    "open_qa": (
        "Put the direct answer in the first sentence, with the key fact in bold.\n"
        "Follow with a short paragraph or a few bullets of supporting context (dates, names, background).\n"
        "Use the supplied evidence where it is relevant to confirm or enrich the answer; do not invent citations or sources.\n"
        "Keep it brief, with no headings for a simple fact."
    ),
    "closed_qa": (
        "Answer the question directly in the first sentence, taking the answer from the supplied passage.\n"
        "Then quote or paraphrase the part of the passage that supports it.\n"
        "If the passage does not contain the answer, say so plainly rather than guessing.\n"
        "Bring in outside information only if the user asked for it."
    ),
    "fill_in_the_blank": (
        "Give the completed sentence or text first, with the filled-in words in bold.\n"
        "If there are several blanks, also list the answers in order as a numbered list.\n"
        "Where the original explains a choice, or it helps, add one short sentence per blank on why the word fits."
    ),
    "fact_verification": (
        "Begin with a clear verdict in bold: True, False, Partly true, or Cannot be verified.\n"
        "Follow with a brief explanation, giving the correct fact when the claim is wrong.\n"
        "List the key supporting facts as bullets.\n"
        "Use the supplied evidence where it is relevant; do not invent citations, sources, or quotes."
    ),
    "math_puzzles": (
        "Start with one sentence restating what is asked and the given quantities.\n"
        "Solve in numbered steps, one operation or idea per step, showing every calculation.\n"
        "Write equations clearly, each on its own line when long, and carry units through.\n"
        "Check the result briefly when it is easy to verify.\n"
        "End with the final answer stated explicitly on its own line, e.g. \"Final answer: 42\"."
    ),
    "language_learning_questions": (
        "Answer the question directly in the first one or two sentences.\n"
        "Explain the rule or meaning, with the word, form, or rule under discussion in bold.\n"
        "Give several example sentences as a bulleted list, with translations when they help the learner.\n"
        "Point out common mistakes or exceptions in a short closing \"Note:\" line."
    ),
    "natural_language_learning_tutor": (
        "Open with one short, encouraging sentence that sets up the lesson or activity.\n"
        "Organise the material under bold headings such as Vocabulary, Grammar, and Practice.\n"
        "Give vocabulary and phrases as bullets with their meaning and, where useful, pronunciation.\n"
        "Include example sentences and, where fitting, a short exercise for the learner.\n"
        "End by inviting the learner to answer or keep practising."
    ),
    "exam_problem_solving_tutor": (
        "Begin by naming the concept or principle the problem tests.\n"
        "Work through the solution in numbered steps, showing formulas, substitutions, and intermediate results.\n"
        "For multiple choice, say briefly why the correct option is right and why the others are not.\n"
        "End with the final answer stated explicitly on its own line, e.g. \"Final answer: (B)\"."
    ),
    "ml_ai_language_model_tutor": (
        "Start with a short, plain-language answer or definition.\n"
        "Expand on the key ideas as a numbered or bulleted list, with important terms in bold.\n"
        "Put formulas or code in fenced blocks where they make the idea clearer.\n"
        "Give a concrete example or analogy.\n"
        "Close with a one-sentence summary."
    ),
    "general_classification": (
        "State the result first, with the assigned class in bold.\n"
        "For several items, give a bulleted list or a table pairing each item with its class.\n"
        "Then give a brief reason for each assignment."
    ),
    "ordering": (
        "State the ordering criterion in one sentence.\n"
        "Then give the items as a numbered list in the requested order.\n"
        "Where it helps, show the value used for sorting beside each item (date, size, score).\n"
        "Finish with a brief note on ties or assumptions, if any."
    ),
    "sentiment_analysis": (
        "State the overall sentiment first, in bold (e.g. **Positive**).\n"
        "Then justify it in one to three sentences, quoting the words or phrases that signal it.\n"
        "For several texts, give one labelled line per text, followed by the brief reasons."
    ),
    "code_language_classification": (
        "Name the programming language first, in bold.\n"
        "Then list the features that identify it (keywords, syntax, libraries) as bullets.\n"
        "Mention a version or framework only if the code makes it clear."
    ),
    "language_classification": (
        "Name the language first, in bold.\n"
        "Give the evidence (characteristic words, script, grammar) as a few bullets or one sentence.\n"
        "Add a translation of the text only if the original response included one."
    ),
    "topic_classification": (
        "State the topic or category first, in bold.\n"
        "Justify it in one to three sentences, pointing to key terms or content in the text.\n"
        "If the text also fits a secondary category, mention it after the main one."
    ),
    "value_judgement": (
        "Open with a clear statement of the overall position or judgement.\n"
        "Present the considerations as bullets or short paragraphs, covering the main viewpoints fairly.\n"
        "Acknowledge uncertainty or disagreement where it exists.\n"
        "End with a short conclusion that sums up the judgement."
    ),
    "rejecting": (
        "Decline politely in the first sentence, saying plainly that you cannot help with this request.\n"
        "Give a short reason (risk of harm, illegality, privacy) without lecturing.\n"
        "Where possible, offer a safe, legitimate alternative or resource in one or two sentences.\n"
        "Keep the reply brief and include none of the disallowed content."
    ),
}
