"""Hide the values of payload fields named like secrets before anything shows them; what is a
secret is ``jobfleet.secret_names``'s to say, for the logs too."""

import re

from jobfleet.secret_names import MASK, is_secret, mask

__all__ = ["MASK", "is_secret", "mask", "mask_text"]

# "name": "value" pairs inside raw text that is not valid JSON (an undecodable job, say)
_RAW_PAIR = re.compile(r'("[^"]*"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\s]+)')


def mask_text(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + f'"{MASK}"' if is_secret(match.group(1)) else match.group(0)

    return _RAW_PAIR.sub(replace, text)
