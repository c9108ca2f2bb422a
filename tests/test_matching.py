from responses_app.matching import ResponseIndex


def build(*rows: tuple[int, str, str], unknown: str = "no idea") -> ResponseIndex:
    return ResponseIndex.build(rows, version=1, unknown_response=unknown, settings={})


def test_exact_prompt_gets_its_answer():
    match = build((1, "what is 2+2?", "4")).find("what is 2+2?")
    assert (match.answer, match.entry.id, match.rule) == ("4", 1, "exact")


def test_surrounding_white_space_is_ignored():
    match = build((1, "hello", "hi")).find("  hello\n")
    assert (match.answer, match.rule) == ("hi", "trimmed")


def test_any_capitalisation_matches_a_lower_case_key_as_in_the_original_server():
    match = build((1, "what colour is the sky?", "blue")).find("What Colour is the sky?")
    assert (match.answer, match.rule) == ("blue", "lowercase")


def test_a_key_with_capitals_matches_exactly_and_case_folded():
    index = build((1, "Hello World", "hi"))
    assert index.find("Hello World").rule == "exact"
    assert index.find("hello world").answer == "hi"


def test_exact_key_wins_over_case_folded_one():
    index = build((1, "hello", "lower"), (2, "Hello", "capital"))
    assert index.find("Hello").answer == "capital"
    assert index.find("hello").answer == "lower"
    assert index.find("HELLO").answer == "lower"


def test_unknown_prompt_gets_default_answer():
    match = build((1, "hello", "hi"), unknown="I don't know").find("goodbye")
    assert (match.answer, match.entry, match.rule) == ("I don't know", None, "default")


def test_answer_tokens_are_counted_once_at_build_time():
    index = build((1, "q", "The sky is blue."))
    assert index.find("q").answer_tokens == 5
