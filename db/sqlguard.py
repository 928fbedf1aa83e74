"""Friendly early refusals of user SQL, from a real parser (sqlglot) in the backend's dialect.

This check only explains; it is not what keeps the data safe. The database is the last word: the console
connects as a read-only role (PostgreSQL) or opens the file read-only with an authorizer (SQLite), and sends
exactly one statement through the extended protocol. So a statement this check misreads can at worst be
refused by the server with the server's own reason; it can never slip a second statement through.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from db.errors import InteropError
from db.sqlite_worker import READ_PRAGMAS

# sqlglot logs a warning for every statement it keeps as an opaque Command; the console says why instead.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

__all__ = ["READ_PRAGMAS", "ReadOnlyViolation", "Statement", "check_read_only", "dialect_of"]


class ReadOnlyViolation(InteropError):
    """The statement would write, or is not a single read-only statement."""


@dataclass(frozen=True)
class Statement:
    """The one statement to send (no trailing `;` or comments) and what it is.

    kind: "query" (SELECT / WITH / VALUES / TABLE: a server-side cursor can hold it), "explain", "show",
    "pragma" (SQLite), or "unparsed" (the parser could not read it; the server will judge it)."""

    text: str
    kind: str


#: Statements allowed to start a query, per dialect (what the refusal messages offer instead).
_ALLOWED_STARTS = {
    "postgres": "SELECT, WITH, VALUES, TABLE, EXPLAIN or SHOW",
    "sqlite": "SELECT, WITH, VALUES, EXPLAIN or PRAGMA",
}
_QUERY_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "("})


def _words(text: str) -> list[str]:
    return text.split()


_WRITES = _words(
    "INSERT UPDATE DELETE MERGE UPSERT REPLACE TRUNCATE DROP CREATE ALTER GRANT REVOKE COMMENT REINDEX "
    "CLUSTER REFRESH SECURITY IMPORT ANALYZE ANALYSE"
)
_TRANSACTIONS = _words("BEGIN START END COMMIT ROLLBACK ABORT SAVEPOINT RELEASE LOCK")
_SESSION = _words(
    "SET RESET DISCARD LISTEN UNLISTEN NOTIFY PREPARE EXECUTE DEALLOCATE DO CALL LOAD CHECKPOINT DECLARE "
    "FETCH MOVE CLOSE USE"
)

#: Why a statement that starts with this word is refused.
_STATEMENT_REASONS: dict[str, str] = {
    **dict.fromkeys(_WRITES, "writes to the database"),
    **dict.fromkeys(_TRANSACTIONS, "controls transactions; each query runs in its own read-only transaction"),
    **dict.fromkeys(_SESSION, "changes the session or runs code"),
    "ATTACH": "opens another database file",
    "DETACH": "closes an attached database",
    "VACUUM": "rewrites the database (VACUUM INTO writes a copy to a file)",
    "COPY": "reads or writes files and tables",
}

_FILES = "reads or writes files on the database server"
_LARGE_OBJECTS = "writes large objects"
_OTHER_DB = "connects to another database"
_SERVER = "acts on the server or on other sessions"
_TEXT_SQL = "runs SQL given as text (write that SQL as the query itself)"

#: Functions refused inside a query, with the reason (the database refuses them too; this says why first).
REFUSED_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(
        _words(
            "pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file pg_file_write pg_file_rename pg_file_unlink "
            "pg_file_sync pg_logdir_ls pg_read_file_old lo_import lo_export readfile writefile edit load_extension "
            "fts3_tokenizer"
        ),
        _FILES,
    ),
    **dict.fromkeys(
        _words("lo_create lo_creat lo_unlink lo_from_bytea lo_put lowrite lo_truncate lo_truncate64"), _LARGE_OBJECTS
    ),
    **dict.fromkeys(
        _words("dblink dblink_exec dblink_connect dblink_connect_u dblink_open dblink_send_query dblink_fetch"),
        _OTHER_DB,
    ),
    "nextval": "advances a sequence",
    "setval": "sets a sequence",
    "set_config": "changes the session's settings (its time limit, its read-only mode)",
    **dict.fromkeys(
        _words(
            "pg_advisory_lock pg_advisory_lock_shared pg_advisory_xact_lock pg_advisory_xact_lock_shared "
            "pg_try_advisory_lock pg_try_advisory_lock_shared pg_try_advisory_xact_lock "
            "pg_try_advisory_xact_lock_shared"
        ),
        "takes an advisory lock other sessions would wait for",
    ),
    **dict.fromkeys(
        _words(
            "pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_promote pg_switch_wal "
            "pg_create_restore_point pg_backup_start pg_backup_stop pg_start_backup pg_stop_backup "
            "pg_log_backend_memory_contexts pg_import_system_collations pg_create_physical_replication_slot "
            "pg_create_logical_replication_slot pg_drop_replication_slot pg_stat_reset pg_stat_reset_shared "
            "pg_stat_reset_single_table_counters pg_notify pg_logical_emit_message pg_replication_slot_advance "
            "pg_logical_slot_get_changes pg_logical_slot_get_binary_changes pg_logical_slot_peek_changes "
            "pg_logical_slot_peek_binary_changes"
        ),
        _SERVER,
    ),
    **dict.fromkeys(
        _words("query_to_xml query_to_xml_and_xmlschema query_to_xmlschema cursor_to_xml ts_stat"), _TEXT_SQL
    ),
}

#: Nodes that write (or run opaque commands) wherever they appear inside a query.
_WRITE_NODES: tuple[type[exp.Expression], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Copy,
    exp.Command,
)


def dialect_of(backend: str) -> str:
    """sqlglot's dialect name for a SQLAlchemy backend name."""
    return "postgres" if backend in ("postgresql", "postgres") else backend


def _refuse(message: str) -> ReadOnlyViolation:
    return ReadOnlyViolation(f"refused: {message}")


def _word(token: Token) -> str:
    return "(" if token.token_type == TokenType.L_PAREN else token.text.upper()


def _split(tokens: list[Token]) -> list[list[Token]]:
    """Tokens per statement (empty statements, e.g. from a trailing `;`, dropped)."""
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if s]


def _text(sql: str, tokens: list[Token]) -> str:
    return sql[tokens[0].start : tokens[-1].end + 1]


def _refused_call(tokens: list[Token]) -> str | None:
    """The reason to refuse the first call of a refused function (quoted or schema-qualified names too)."""
    for token, following in itertools.pairwise(tokens):
        if following.token_type != TokenType.L_PAREN or token.token_type in (TokenType.STRING, TokenType.NUMBER):
            continue
        name = token.text.lower()
        if name in REFUSED_FUNCTIONS:
            return f"{name}() {REFUSED_FUNCTIONS[name]}; the console only reads"
    return None


def _check_query(tree: exp.Query | exp.Values) -> None:
    """Refuse what a read-looking query can hide: writing CTEs, SELECT … INTO, row locks."""
    for node in tree.walk():
        if isinstance(node, _WRITE_NODES):
            kind = node.key.upper() if not isinstance(node, exp.Command) else str(node.this).upper()
            raise _refuse(f"{kind} inside the query writes or runs a command; the console only reads")
        if isinstance(node, exp.Into):
            raise _refuse("SELECT … INTO creates a table; the console only reads")
        if isinstance(node, exp.Lock):
            raise _refuse("SELECT … FOR UPDATE/SHARE locks rows; the console only reads")


def _query(sql: str, tokens: list[Token], dialect: str) -> Statement:
    """A statement that starts like a query: parse it and check what it contains."""
    text = _text(sql, tokens)
    reason = _refused_call(tokens)
    if reason:
        raise _refuse(reason)
    try:
        tree = sqlglot.parse_one(text, read=dialect)
    except ParseError:
        # The server may well accept what sqlglot cannot read; as one statement through the extended protocol
        # on a read-only connection it can do no harm, and the server gives the true reason if it is wrong.
        return Statement(text, "unparsed")
    if not isinstance(tree, exp.Query | exp.Values):
        return Statement(text, "unparsed")
    _check_query(tree)
    return Statement(text, "query")


def _explain(sql: str, tokens: list[Token], dialect: str) -> Statement:
    """EXPLAIN [ (options) | ANALYZE | VERBOSE | QUERY PLAN ] query: the explained statement must be a query."""
    text = _text(sql, tokens)
    inner = text[tokens[0].end - tokens[0].start + 1 :]  # the tokenizer keeps a command's rest as one string
    try:
        rest = Dialect.get_or_raise(dialect).tokenize(inner)
    except TokenError:
        return Statement(text, "unparsed")
    if dialect == "postgres" and rest and rest[0].token_type == TokenType.L_PAREN:
        depth = 0
        for index, token in enumerate(rest):
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
            if depth == 0:
                rest = rest[index + 1 :]
                break
    options = {"ANALYZE", "ANALYSE", "VERBOSE"} if dialect == "postgres" else {"QUERY", "PLAN"}
    while rest and rest[0].text.upper() in options:
        rest = rest[1:]
    if not rest:
        raise _refuse("EXPLAIN needs a query to explain")
    word = _word(rest[0])
    if word not in _QUERY_STARTS:
        head = " ".join(f"EXPLAIN {inner[: rest[0].start]}".split())
        why = _STATEMENT_REASONS.get(word, "is not a query")
        raise _refuse(f"{head} {word} …: {word} {why}; only queries can be explained here")
    _query(inner, rest, dialect)
    return Statement(text, "explain")


def _pragma(sql: str, tokens: list[Token]) -> Statement:
    """SQLite PRAGMAs that read: `PRAGMA [schema.]name`, or a table-describing one with an argument."""
    rest = tokens[1:]
    if len(rest) >= 2 and rest[1].token_type == TokenType.DOT:
        rest = rest[2:]
    if not rest:
        raise _refuse("PRAGMA needs a name")
    name, after = rest[0].text, rest[1:]
    if after and after[0].token_type == TokenType.EQ:
        raise _refuse(f"PRAGMA {name} = … changes a setting; only PRAGMAs that read are allowed")
    if after and after[0].token_type == TokenType.L_PAREN and name.upper() not in READ_PRAGMAS:
        raise _refuse(f"PRAGMA {name}(…) changes a setting; only PRAGMAs that read are allowed")
    return Statement(_text(sql, tokens), "pragma")


def check_read_only(sql: str, dialect: str = "sqlite") -> Statement:
    """The single statement of `sql`, or ReadOnlyViolation saying truly why it is refused."""
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except TokenError:
        # An unterminated quote or comment, or syntax the tokenizer does not know: the server judges it
        # (it runs at most one statement, as a read-only role), and says what is wrong.
        if not sql.strip():
            raise _refuse("no SQL statement given") from None
        return Statement(sql.strip(), "unparsed")
    statements = _split(tokens)
    if not statements:
        raise _refuse("no SQL statement given")
    if len(statements) > 1:
        firsts = "; ".join(f"{_word(s[0])} …" for s in statements[:4])
        raise _refuse(f"{len(statements)} statements given ({firsts}); the console runs exactly one statement")
    tokens = statements[0]
    first = _word(tokens[0])
    reason = _refused_call(tokens)
    if reason:
        raise _refuse(reason)
    if first in _QUERY_STARTS:
        return _query(sql, tokens, dialect)
    if first == "EXPLAIN":
        return _explain(sql, tokens, dialect)
    if first == "SHOW" and dialect == "postgres":
        return Statement(_text(sql, tokens), "show")
    if first == "PRAGMA" and dialect == "sqlite":
        return _pragma(sql, tokens)
    allowed = _ALLOWED_STARTS.get(dialect, _ALLOWED_STARTS["sqlite"])
    why = _STATEMENT_REASONS.get(first)
    if why:
        raise _refuse(f"{first} {why}; the console runs one read-only query ({allowed})")
    raise _refuse(f"{first} statements are not allowed; start with {allowed}")
