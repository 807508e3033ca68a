"""Subscription accounts: Claude (Pro/Max) and Codex (ChatGPT) logged in over OAuth.

pkce.py      login URLs, PKCE and state, parsing what the operator pastes back (pure)
files.py     CLIProxyAPI account files → AccountData (pure)
policy.py    when to refresh, what a token-endpoint answer means, backoff (pure)
endpoints.py the token endpoints, profile and id-token identity: the only network I/O here
store.py     the database side (synchronous ORM; async code goes through
             database_sync_to_async): upserting accounts, the refresh lease, needs login
tokens.py    the in-process token cache and the refresh that never races
sessions.py  pending logins shared by every worker
"""
