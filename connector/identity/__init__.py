"""Identity: keys, did:web / did:key, self-issued tokens and VC-JWT credentials (DESIGN.md §3),
and the OIDC access tokens of the management API's users (``oidc``).

``signing`` is the only module that touches jwcrypto; the others use its typed API.
"""
