"""A static check of user SQL so the console can say *why* a statement is refused (the database enforces it too)."""

from __future__ import annotations

import re


class ReadOnlyViolation(ValueError):
    """The statement would write, or is not a single read-only statement."""


#: Keywords of writes that may hide inside a read-looking statement (a CTE, EXPLAIN ANALYZE, …): refused anywhere.
WRITE_KEYWORDS = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "DROP",
        "ATTACH",
        "DETACH",
        "CREATE",
        "ALTER",
        "TRUNCATE",
        "GRANT",
        "REVOKE",
        "VACUUM",
        "REINDEX",
        "COPY",
        "MERGE",
        "UPSERT",
    }
)
#: Statements that change the session, transactions or the server; refused as a statement's first word (as
#: words inside a query they are ordinary names, e.g. a column called `release`).
WRITE_STATEMENTS = WRITE_KEYWORDS | {
    "LOCK",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "BEGIN",
    "START",
    "END",
    "ABORT",
    "CLUSTER",
    "REFRESH",
    "LISTEN",
    "NOTIFY",
    "DISCARD",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "IMPORT",
    "LOAD",
    "SECURITY",
    "COMMENT",
    "CALL",
    "DO",
    "SET",
    "RESET",
    "REPLACE",
}
#: Statements allowed to start a query.
READ_STARTS = frozenset({"SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA", "SHOW", "TABLE"})
#: Functions that write or escape the sandbox even inside a SELECT.
WRITE_FUNCTIONS = frozenset(
    {
        "SET_CONFIG",
        "PG_TERMINATE_BACKEND",
        "PG_CANCEL_BACKEND",
        "LO_IMPORT",
        "LO_EXPORT",
        "LO_UNLINK",
        "PG_READ_FILE",
        "PG_READ_BINARY_FILE",
        "PG_LS_DIR",
        "DBLINK",
        "DBLINK_EXEC",
        "LOAD_EXTENSION",
        "WRITEFILE",
        "READFILE",
        "EDIT",
        "FTS3_TOKENIZER",
        "PG_ADVISORY_LOCK",
        "PG_RELOAD_CONF",
        "NEXTVAL",
        "SETVAL",
    }
)

_TOKEN = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*'|E'(?:[^'\\]|\\.|'')*'|\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)
  | (?P<ident>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<semi>;)
  | (?P<other>\S)
    """,
    re.VERBOSE | re.DOTALL,
)


#: PRAGMAs that take an argument yet only read (SQLite).
READ_PRAGMAS = frozenset(
    {
        "TABLE_INFO",
        "TABLE_XINFO",
        "TABLE_LIST",
        "INDEX_LIST",
        "INDEX_INFO",
        "INDEX_XINFO",
        "FOREIGN_KEY_LIST",
        "FOREIGN_KEY_CHECK",
        "INTEGRITY_CHECK",
        "QUICK_CHECK",
    }
)


def _statements(sql: str) -> tuple[list[list[tuple[str, str]]], list[int]]:
    """(kind, text) tokens of each statement and where each ends; comments dropped, quoted text opaque."""
    statements: list[list[tuple[str, str]]] = [[]]
    ends: list[int] = [0]
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup if match.lastgroup != "tag" else "string"
        if kind == "comment":
            continue
        if kind == "semi":
            statements.append([])
            ends.append(0)
            continue
        if kind == "other" and match.group() in ("'", '"', "`"):
            raise ReadOnlyViolation(f"refused: unterminated quote {match.group()} in the statement")
        statements[-1].append((kind or "other", match.group()))
        ends[-1] = match.end()
    kept = [(s, e) for s, e in zip(statements, ends, strict=True) if s]
    return [s for s, _ in kept], [e for _, e in kept]


def _pragma_writes(words: list[tuple[int, str]], tokens: list[tuple[str, str]]) -> bool:
    """`PRAGMA x = v` and `PRAGMA x(v)` set things, except the reading PRAGMAs that take a table name."""
    if any(text == "=" for _, text in tokens):
        return True
    has_argument = any(text == "(" for _, text in tokens)
    return has_argument and not any(w in READ_PRAGMAS for _, w in words[1:3])


def _why(word: str) -> str:
    """One-line reason a keyword is refused."""
    if word in ("ATTACH", "DETACH"):
        return f"refused: {word} opens or closes another database file; the console is read-only"
    if word in ("BEGIN", "START", "END", "ABORT", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "LOCK"):
        return f"refused: {word} controls transactions; the console runs each query in its own read-only one"
    if word in ("SET", "RESET", "DISCARD", "LISTEN", "NOTIFY", "PREPARE", "EXECUTE", "DEALLOCATE", "DO", "CALL"):
        return f"refused: {word} changes the session or runs code; the console runs one read-only query"
    return f"refused: {word} writes to the database; the console is read-only"


def check_read_only(sql: str) -> str:
    """Return the single statement (without a trailing `;`) or raise ReadOnlyViolation saying why."""
    statements, ends = _statements(sql)
    if not statements:
        raise ReadOnlyViolation("refused: no SQL statement given")
    if len(statements) > 1:
        raise ReadOnlyViolation(
            f"refused: {len(statements)} statements given; the console runs exactly one read-only statement"
        )
    tokens = statements[0]
    words = [(i, text.upper()) for i, (kind, text) in enumerate(tokens) if kind == "word"]
    if not words or words[0][0] != 0:
        raise ReadOnlyViolation("refused: a query must start with SELECT, WITH, VALUES, EXPLAIN, SHOW or PRAGMA")
    first = words[0][1]
    if first in WRITE_STATEMENTS:
        raise ReadOnlyViolation(_why(first))
    if first not in READ_STARTS:
        raise ReadOnlyViolation(
            f"refused: {first} statements are not allowed; start with SELECT, WITH, VALUES, EXPLAIN, SHOW or PRAGMA"
        )
    for index, word in words:
        if word in WRITE_KEYWORDS:
            raise ReadOnlyViolation(_why(word))
        nxt = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if word in WRITE_FUNCTIONS and nxt == "(":
            raise ReadOnlyViolation(f"refused: {word.lower()}() can change the server or its files")
        if word == "INTO" and first in ("SELECT", "WITH"):
            raise ReadOnlyViolation("refused: SELECT … INTO creates a table; the console is read-only")
    if first == "PRAGMA" and _pragma_writes(words, tokens):
        raise ReadOnlyViolation("refused: PRAGMA with a value changes settings; only reading PRAGMAs is allowed")
    return sql[: ends[0]].strip()
