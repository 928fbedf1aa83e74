"""The PostgreSQL reader role the SQL console connects as: make one, and tell whether a role only reads.

The console trusts the database, not a string check: on PostgreSQL it runs user SQL only as a role that can
read and nothing else. `reader_problems` lists what would let a role do more (superuser or other powerful
attributes, owning anything, a write privilege on a table, column, sequence, schema, database or large
object, server-file functions or roles); `create_reader` makes a role with none of them.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from db.errors import InteropError, first_line

__all__ = [
    "ReaderError",
    "ReaderSetup",
    "create_reader",
    "default_passfile",
    "drop_reader",
    "pg_conninfo",
    "reader_problems",
]

#: Predefined roles whose members can write, reach the server's files or programs, or act on other sessions.
UNSAFE_PREDEFINED_ROLES = frozenset(
    {
        "pg_write_all_data",
        "pg_write_server_files",
        "pg_read_server_files",
        "pg_execute_server_program",
        "pg_signal_backend",
        "pg_checkpoint",
        "pg_maintain",
        "pg_create_subscription",
        "pg_use_reserved_connections",
        "pg_database_owner",
    }
)
#: Functions PostgreSQL revokes from PUBLIC because they reach files, programs or the server: a reader that
#: may execute one was granted it explicitly.
SERVER_FUNCTIONS = (
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "dblink_connect_u",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_stat_reset_shared",
)
TABLE_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
COLUMN_WRITES = ("INSERT", "UPDATE", "REFERENCES")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ReaderError(InteropError):
    """The reader role cannot be made or is not safe; one line the user can act on (no secrets)."""


def pg_conninfo(url: URL) -> str:
    """A libpq URI for a SQLAlchemy URL (psycopg wants `postgresql://`, not `postgresql+psycopg://`)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# --- is this role a reader? ----------------------------------------------------------------------------

_ROLES_SQL = """
SELECT oid, rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER') ORDER BY rolname <> current_user, rolname
"""
_OWNED_SQL = """
SELECT kind, name FROM (
    SELECT 'database' AS kind, quote_ident(datname) AS name FROM pg_database
     WHERE datname = current_database() AND datdba = ANY(%(roles)s)
    UNION ALL
    SELECT 'schema', quote_ident(nspname) FROM pg_namespace WHERE nspowner = ANY(%(roles)s)
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                          ELSE 'table' END,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relowner = ANY(%(roles)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT 'large object', oid::text FROM pg_largeobject_metadata WHERE lomowner = ANY(%(roles)s)
) owned ORDER BY kind, name LIMIT 3
"""
_TABLE_WRITES_SQL = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, p.privilege
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN unnest(%(privileges)s::text[]) WITH ORDINALITY AS p(privilege, position)
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  AND EXISTS (
      SELECT 1 FROM unnest(%(roles)s::oid[]) AS r(oid)
      WHERE has_table_privilege(r.oid, c.oid, p.privilege)
         OR (p.privilege = ANY(%(column_privileges)s) AND has_any_column_privilege(r.oid, c.oid, p.privilege)))
ORDER BY 1, p.position
"""
_OTHER_WRITES_SQL = """
SELECT kind, name FROM (
    SELECT 'use or set sequence' AS kind, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'S' AND EXISTS (SELECT 1 FROM unnest(%(roles)s::oid[]) AS r(oid)
           WHERE has_sequence_privilege(r.oid, c.oid, 'USAGE') OR has_sequence_privilege(r.oid, c.oid, 'UPDATE'))
    UNION ALL
    SELECT 'CREATE in schema', quote_ident(nspname) FROM pg_namespace ns
     WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
       AND EXISTS (SELECT 1 FROM unnest(%(roles)s::oid[]) AS r(oid) WHERE has_schema_privilege(r.oid, ns.oid, 'CREATE'))
    UNION ALL
    SELECT 'CREATE in database', quote_ident(current_database())
     WHERE EXISTS (SELECT 1 FROM unnest(%(roles)s::oid[]) AS r(oid)
                   WHERE has_database_privilege(r.oid, current_database(), 'CREATE'))
    UNION ALL
    SELECT 'write large object', m.oid::text FROM pg_largeobject_metadata m
     WHERE EXISTS (SELECT 1 FROM aclexplode(m.lomacl) AS a
                   WHERE a.privilege_type = 'UPDATE' AND (a.grantee = 0 OR a.grantee = ANY(%(roles)s)))
    UNION ALL
    SELECT 'write every large object', 'lo_compat_privileges = on'
     WHERE current_setting('lo_compat_privileges') = 'on'
    UNION ALL
    SELECT 'execute', p.oid::regprocedure::text FROM pg_proc p
     WHERE p.proname = ANY(%(functions)s)
       AND EXISTS (SELECT 1 FROM unnest(%(roles)s::oid[]) AS r(oid)
                   WHERE has_function_privilege(r.oid, p.oid, 'EXECUTE'))
) found ORDER BY kind, name
"""


def reader_problems(conn: Any) -> list[str]:
    """Why the role of psycopg connection `conn` could do more than read (empty: it only reads).

    Counts the role itself and every role it is a member of (it could SET ROLE to any of them)."""
    with conn.cursor() as cur:
        cur.execute(_ROLES_SQL)
        roles = cur.fetchall()
        oids = [r[0] for r in roles]
        for _oid, name, is_super, *_ in roles:
            if is_super:  # may do anything: nothing else needs saying
                return ["is a superuser" + ("" if name == roles[0][1] else f" (through its membership in {name})")]
        cur.execute(_OWNED_SQL, {"roles": oids})
        problems = [f"owns {kind} {name}" for kind, name in cur.fetchall()]
        for _oid, name, _super, createrole, createdb, replication, bypassrls in roles:
            via = "" if name == roles[0][1] else f" (through its membership in {name})"
            held = [
                attribute
                for attribute, has in (
                    ("CREATEROLE", createrole),
                    ("CREATEDB", createdb),
                    ("REPLICATION", replication),
                    ("BYPASSRLS", bypassrls),
                )
                if has
            ]
            if held:
                problems.append(f"has {', '.join(held)}{via}")
            if name in UNSAFE_PREDEFINED_ROLES:
                problems.append(f"is a member of {name}")
        privileges = list(TABLE_WRITES)
        if conn.info.server_version >= 170000:
            privileges.append("MAINTAIN")
        cur.execute(
            _TABLE_WRITES_SQL, {"roles": oids, "privileges": privileges, "column_privileges": list(COLUMN_WRITES)}
        )
        per_table: dict[str, list[str]] = {}
        for table, privilege in cur.fetchall():
            per_table.setdefault(table, []).append(privilege)
        problems += [f"may {', '.join(privs)} on {table}" for table, privs in per_table.items()]
        cur.execute(_OTHER_WRITES_SQL, {"roles": oids, "functions": list(SERVER_FUNCTIONS)})
        problems += [f"may {kind} {name}" for kind, name in cur.fetchall()]
    return problems


# --- making one ----------------------------------------------------------------------------------------


@dataclass
class ReaderSetup:
    """What `create_reader` did: the role, where it may read, and the URL to use (no password in it)."""

    role: str
    database: str
    schema: str
    created: bool
    tables: int
    default_owners: list[str]
    url: str
    passfile: Path | None
    password_set: bool
    skipped_owners: list[str] = field(default_factory=list)


def default_passfile() -> Path:
    """Where libpq looks for passwords: $PGPASSFILE, else ~/.pgpass."""
    return Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass").expanduser()


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def store_password(passfile: Path, host: str, port: str, database: str, role: str, password: str) -> None:
    """Add or replace the role's line in a libpq password file, kept at mode 0600 (libpq ignores it otherwise)."""
    key = ":".join(_pgpass_escape(v) for v in (host, port, database, role)) + ":"
    lines = passfile.read_text().splitlines() if passfile.exists() else []
    kept = [line for line in lines if not line.startswith(key)]
    passfile.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join([*kept, key + _pgpass_escape(password)]) + "\n")
    os.chmod(passfile, 0o600)


def _reader_url(admin: URL, role: str, passfile: Path | None) -> URL:
    """The admin URL with the reader's name and no password (libpq finds it in the password file)."""
    query = dict(admin.query)
    query.pop("password", None)
    query.pop("user", None)
    if passfile is not None and passfile != default_passfile():
        query["passfile"] = str(passfile)
    return admin.set(drivername="postgresql", username=role, password=None, query=query)


def create_reader(
    admin_url: URL,
    role: str,
    schema: str | None = None,
    statement_timeout_s: float = 60.0,
    password: str | None = None,
    keep_password: bool = False,
    passfile: Path | None = None,
) -> ReaderSetup:
    """Create (or bring back in line) a login role that can only read the schema; connect with `admin_url`.

    The password (generated unless given) goes to the server as a SCRAM verifier, never as text, and into
    `passfile` (libpq's password file, mode 0600), never into logs or the printed URL."""
    import psycopg
    from psycopg import sql

    if not ROLE_NAME.match(role):
        raise ReaderError(
            f"--name {role!r}: use lowercase letters, digits and '_' (at most 63, not starting with a digit)"
        )
    if statement_timeout_s <= 0:
        raise ReaderError(f"--statement-timeout must be a positive number of seconds, not {statement_timeout_s:g}")
    try:
        conn = psycopg.connect(pg_conninfo(admin_url), connect_timeout=10, application_name="interop-create-reader")
    except psycopg.Error as exc:
        raise ReaderError(f"cannot connect with INTEROP_DATABASE_URL: {first_line(exc)}") from None
    ident = sql.Identifier(role)
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database(), current_schema(), current_setting('is_superuser')")
            admin, database, current_schema, admin_super = cur.fetchone()  # type: ignore[misc]
            target_schema = schema or current_schema
            if role == admin:
                raise ReaderError(f"--name {role!r} is the role of INTEROP_DATABASE_URL itself; choose another name")
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (target_schema,))
            if cur.fetchone() is None:
                raise ReaderError(f"--schema {target_schema!r}: no such schema in database {database}")
            cur.execute("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
            existing = cur.fetchone()
            if existing and existing[0]:
                raise ReaderError(f"role {role!r} already exists and is a superuser; choose another --name")
            if existing is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT").format(ident))
            elif not existing[1]:
                cur.execute(sql.SQL("ALTER ROLE {} LOGIN").format(ident))
            set_password = existing is None or not keep_password
            secret = password or secrets.token_urlsafe(24)
            if set_password:
                # The server gets (and may log) only the SCRAM verifier, computed here.
                verifier = conn.pgconn.encrypt_password(secret.encode(), role.encode()).decode()
                cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(verifier)))
            db_ident, schema_ident = sql.Identifier(database), sql.Identifier(target_schema)
            for statement in (
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "REVOKE CREATE, TEMPORARY ON DATABASE {db} FROM {role}",
                "GRANT USAGE ON SCHEMA {schema} TO {role}",
                "REVOKE CREATE ON SCHEMA {schema} FROM {role}",
                "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
                "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                "ALTER ROLE {role} SET default_transaction_read_only = on",
            ):
                cur.execute(sql.SQL(statement).format(db=db_ident, schema=schema_ident, role=ident))
            timeout_ms = int(statement_timeout_s * 1000)
            for setting, value in (
                ("statement_timeout", timeout_ms),
                ("lock_timeout", 5000),
                ("idle_in_transaction_session_timeout", max(timeout_ms, 60_000)),
            ):
                cur.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(ident, sql.Identifier(setting), value))
            # Future tables: default privileges of every role that owns tables here (and of the admin, who
            # runs the migrations), where the admin may set them.
            cur.execute(
                """SELECT DISTINCT r.rolname, pg_has_role(current_user, r.oid, 'MEMBER')
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
                   WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                   UNION SELECT current_user::name, true ORDER BY 1""",
                (target_schema,),
            )
            owners = cur.fetchall()
            default_owners = [name for name, allowed in owners if allowed or admin_super == "on"]
            skipped = [name for name, allowed in owners if not (allowed or admin_super == "on")]
            for owner in default_owners:
                cur.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                        sql.Identifier(owner), schema_ident, ident
                    )
                )
            cur.execute(
                """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')""",
                (target_schema,),
            )
            tables = int(cur.fetchone()[0])  # type: ignore[index]
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ReaderError(
            f"the role of INTEROP_DATABASE_URL may not set up a reader ({first_line(exc)}): run this with a role "
            "that owns the tables and may create roles (CREATEROLE), or as a superuser"
        ) from None
    except psycopg.Error as exc:
        raise ReaderError(f"cannot set up reader {role!r}: {first_line(exc)}") from None
    finally:
        conn.close()

    problems = _problems_as(admin_url, role, secret if set_password else None)
    if problems:
        raise ReaderError(
            f"role {role!r} was set up but still {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + "; revoke that, then run `interop db create-reader` again"
        )
    host, port = admin_url.host or "localhost", str(admin_url.port or 5432)
    if set_password and passfile is not None:
        store_password(passfile, host, port, database, role, secret)
    url = _reader_url(admin_url, role, passfile)
    return ReaderSetup(
        role=role,
        database=database,
        schema=target_schema,
        created=existing is None,
        tables=tables,
        default_owners=default_owners,
        url=url.render_as_string(hide_password=True),
        passfile=passfile if set_password else None,
        password_set=set_password,
        skipped_owners=skipped,
    )


def _problems_as(admin_url: URL, role: str, password: str | None) -> list[str]:
    """reader_problems, connected as the new role (so the check sees exactly what the console will)."""
    import psycopg

    url = admin_url.set(username=role, password=None)
    extra = {"password": password} if password else {}
    try:
        with psycopg.connect(pg_conninfo(url), connect_timeout=10, **extra) as conn:  # type: ignore[arg-type]
            return reader_problems(conn)
    except psycopg.OperationalError:
        # The server may not let the new role in from here (pg_hba.conf); check it from the admin's side.
        with psycopg.connect(pg_conninfo(admin_url), connect_timeout=10) as conn:
            with conn.cursor() as cur:
                from psycopg import sql

                cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            return reader_problems(conn)


def drop_reader(admin_url: URL, role: str) -> None:
    """Drop a reader made by create_reader: its grants in this database (DROP OWNED), then the role."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_conninfo(admin_url), connect_timeout=10, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
