"""The engine's own locks: what SQL sent to the local gateway may make the engine touch.

chDB is clickhouse-local inside the gateway's process, and clickhouse-local trusts its user with
the whole machine: ``file()`` reads any path, ``url()`` / ``remote()`` / ``s3()`` reach any host,
and the server's ``user_files_path`` checks are skipped. The gateway runs as the developer, on
the developer's machine, so it starts the engine with a configuration of its own, written into
its data directory on every start:

- its one user is granted what the pipeline, clickhouse-connect and an analyst need (read, write,
  DDL on databases, tables, views and SQL functions, temporary tables) and nothing else: no
  external source (the ``SOURCES`` group: FILE, URL, REMOTE, S3, MYSQL, POSTGRES, ...), no BACKUP,
  SYSTEM, dictionaries or named collections, so every table function, table engine, database
  engine or backup that reaches the file system or the network is refused by the engine itself
  (ACCESS_DENIED, 497);
- its profile pins the settings that name a file, a URL or extra SQL (format schemas and
  templates, error files, a schema registry, the query-rewriting filters, the dialect) and turns
  off expressions in VALUES data, so no request, URL parameter or ``SET`` can aim them elsewhere
  (SETTING_CONSTRAINT_VIOLATION, 452);
- user files, user scripts, format schemas and custom disks live inside the data directory.

- the ``default`` database is the plain Atomic database it is on clickhouse-server: clickhouse-local
  makes it an Overlay whose Filesystem member serves any path as a table, which under these grants
  turns an unknown table into ACCESS_DENIED and a CREATE TABLE into a file (``plain_default``).

What the engine does not check in local mode (the scalar ``file()``, INTO OUTFILE, FROM INFILE,
ATTACH ... FROM a path, ``disk()``, ``python()``) is refused by the statement policy, policy.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

GRANTS = ("SHOW, SELECT, INSERT, ALTER, CREATE DATABASE, CREATE TABLE, CREATE VIEW, CREATE TEMPORARY TABLE, "
          "CREATE FUNCTION, DROP, UNDROP TABLE, TRUNCATE, OPTIMIZE, CHECK, KILL QUERY ON *.*")

# Settings no request may change, with the value they keep ("" = the engine's default).
PINNED = {
    # files the engine would read or write
    "format_schema": "", "format_schema_source": "", "format_template_resultset": "", "format_template_row": "",
    "output_format_schema": "", "input_format_record_errors_file_path": "", "rename_files_after_processing": "",
    # URLs the engine would fetch
    "format_avro_schema_registry_url": "", "url_base": "", "s3_base": "",
    # SQL that would run without passing the statement policy
    "additional_table_filters": "", "additional_result_filter": "", "filter": "", "order": "", "select": "", "sort": "",
    "implicit_table_at_top_level": "", "parallel_replicas_custom_key": "", "dialect": "", "polyglot_dialect": "",
    "allow_experimental_eval_table_function": "",
    # VALUES data is data: expressions in it (file('...')) would be evaluated while inserting
    "input_format_values_interpret_expressions": "0", "input_format_values_deduce_templates_of_expressions": "0",
}

USERS_XML = """<clickhouse>
  <users>
    <default>
      <password></password>
      <profile>default</profile>
      <quota>default</quota>
      <grants><query>GRANT {grants}</query></grants>
    </default>
  </users>
  <profiles>
    <default>
{values}
      <constraints>
{constraints}
      </constraints>
    </default>
  </profiles>
  <quotas><default></default></quotas>
</clickhouse>
"""

CONFIG_XML = """<clickhouse>
  <users_config>{users}</users_config>
  <user_files_path>{data}/user_files/</user_files_path>
  <user_scripts_path>{data}/user_scripts/</user_scripts_path>
  <format_schema_path>{data}/format_schemas/</format_schema_path>
  <custom_local_disks_base_directory>{data}/disks/</custom_local_disks_base_directory>
</clickhouse>
"""


def write_config(data_dir: Path) -> Path:
    """Write the engine's config and users files under ``data_dir/config``; returns the config file."""
    target = data_dir / "config"
    target.mkdir(parents=True, exist_ok=True)
    users = target / "users.xml"
    users.write_text(USERS_XML.format(
        grants=escape(GRANTS),
        values="\n".join(f"      <{name}>{escape(value)}</{name}>" for name, value in PINNED.items() if value),
        constraints="\n".join(f"        <{name}><const/></{name}>" for name in PINNED),
    ))
    config = target / "config.xml"
    config.write_text(CONFIG_XML.format(users=escape(str(users)), data=escape(str(data_dir))))
    return config


def plain_default(query: Callable[[str], str]) -> None:
    """Re-attach the default database's own Atomic database without the Filesystem overlay (every
    engine start: clickhouse-local wraps it again). Its tables stay where they are."""
    engine, uuid = query("SELECT engine, uuid FROM system.databases WHERE name = 'default'").split()
    if engine == "Overlay":
        query("DETACH DATABASE default")
        query(f"ATTACH DATABASE default UUID '{uuid}' ENGINE = Atomic")
