"""Export files made for tests and benchmarks."""


def tiny_messages(count: int) -> bytes:
    """An export file of one conversation of ``count`` one-character messages, each with
    a short id and no parent: the most messages an upload of a given size can hold."""
    messages = ",".join(f'{{"id":"{n:x}","role":"user","content":"x"}}' for n in range(count))
    return (
        '{"format":"chatsite-export","version":1,"conversations":'
        f'[{{"title":"big","messages":[{messages}]}}]}}'
    ).encode()
