from emulate import tokens


def test_real_tiktoken_encoding_offline():
    # Sockets are blocked in this suite: the BPE file must come from the package.
    enc = tokens.encoding("o200k_base")
    assert enc.name == "o200k_base"
    assert enc.encode("hello world") == [24912, 2375]
    assert tokens.encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_prompt_counts_cover_chat_framing():
    text = "Input: [1, 2, 3]"
    chat = ({"role": "user", "content": text},)
    assert tokens.count_prompt(chat) > tokens.count_prompt(text) == tokens.count(text)
