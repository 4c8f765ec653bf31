"""Path spellings a BPJS service never uses, refused at intake (issue 10.9).

BPJS paths are plain segments (``SEP/2.0/insert``, ``Peserta/nokartu/{no}/tglSEP/{d}``).
A front end or upstream that decodes twice, or reads IIS's ``%u`` escapes, backslashes,
``;`` path parameters, overlong UTF-8 (``%c0%ae``) or normalises look-alike dots and
slashes (fullwidth ``%ef%bc%8e``), would see a different path than
Tenang checked (``%252e%252e`` is ``..`` after two decodings), with Tenang's signature
on it. Refusing these outright is
simpler to state and to trust than normalising them; queries are data and untouched.
"""

from __future__ import annotations

import re

# One search over the raw path below the prefix; most paths have none of these bytes.
_TRICK = re.compile(
    r"(?P<double>%25[0-9a-f]{2})|(?P<u>%u[0-9a-f]{0,4})|(?P<nul>%00|\x00)"
    r"|(?P<backslash>%5c|\\)|(?P<param>;)"
    # Overlong UTF-8 ("%c0%ae" is '.' to a lax decoder): never valid, and IIS's old hole.
    r"|(?P<overlong>%c[01]|%e0%[89][0-9a-f]|%f0%8[0-9a-f])"
    # Dots and slashes in other scripts (fullwidth, one-dot leader, small full stop,
    # division and fraction slashes), escaped (raw ones the HTTP parser refuses already):
    # Unicode normalisation (NFKC) or a "best fit" code page turns them into '.', '/' or
    # '\\' further on.
    r"|(?P<lookalike>%ef%bc%8[ef]|%ef%bc%bc|%ef%b9%92|%e2%80%a4|%e2%88%95|%e2%81%84)",
    re.IGNORECASE)
_WHAT = {
    "double": "double percent-encoding ({} decodes to another escape)",
    "u": "%u escapes ({})",
    "nul": "NUL bytes ({})",
    "backslash": "backslashes ({})",
    "param": "path parameters ({})",
    "overlong": "overlong UTF-8 escapes ({})",
    "lookalike": "look-alike dots or slashes ({})",
}


def path_trick(path: str) -> str | None:
    """What is wrong with a raw BPJS path, for the SIMRS; None when it is plain."""
    found = _TRICK.search(path)
    if found is None or found.lastgroup is None:
        return None
    return _WHAT[found.lastgroup].format(repr(found.group()))
