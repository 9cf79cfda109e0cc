"""URLs as they may be shown: without the credentials they can carry."""

from __future__ import annotations

HIDDEN = "***"


def redact_url(url: str | None) -> str | None:
    """`url` with its credentials hidden: the password of `user:password@` (or a bare
    `token@`), every query value and the fragment. Scheme, host, port and path stay, so
    people can still tell which address it is."""
    if not url:
        return url
    rest, _, fragment = url.partition("#")
    rest, question, query = rest.partition("?")
    scheme, slashes, remainder = rest.partition("://")
    if slashes:
        authority, slash, path = remainder.partition("/")
        if "@" in authority:
            userinfo, _, host = authority.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            authority = f"{user}:{HIDDEN}@{host}" if colon else f"{HIDDEN}@{host}"
        rest = f"{scheme}://{authority}{slash}{path}"
    if question:
        names = [part.partition("=")[0] for part in query.split("&")]
        rest += "?" + "&".join(f"{name}={HIDDEN}" if name else "" for name in names)
    if fragment:
        rest += "#" + HIDDEN
    return rest
