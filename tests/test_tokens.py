from responses_app.canned.tokens import count_all, count_tokens


def test_words_count_one_token_per_started_four_characters():
    assert count_tokens("sky") == 1
    assert count_tokens("colour") == 2
    assert count_tokens("Rayleigh") == 2


def test_punctuation_counts_and_white_space_does_not():
    assert count_tokens("what colour is the sky?") == 7
    assert count_tokens("   \n\t ") == 0
    assert count_tokens("") == 0


def test_emoji_and_other_scripts_are_counted():
    assert count_tokens("🙂") == 1
    assert count_tokens("日本語") == 1
    assert count_tokens("مرحبا بالعالم") == 4


def test_counting_is_deterministic_and_additive():
    texts = ["Hello, world!", "The sky is blue."]
    assert count_all(texts) == count_tokens(texts[0]) + count_tokens(texts[1])
    assert count_tokens(texts[0]) == count_tokens(texts[0]) == 6
