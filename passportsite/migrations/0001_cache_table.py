"""The database cache's table (the embedded default cache), created by ``migrate``.

Every way the site is set up runs ``migrate`` (``make run``, the tests and benchmarks that start
it, a deployment), so the table cannot be forgotten. ``createcachetable`` skips tables that exist
and caches that are not in the database, so this is harmless under Redis.
"""

from __future__ import annotations

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
