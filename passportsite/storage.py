"""Static files storage for DEBUG off: WhiteNoise's compressed, hashed files."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Also rewrites the page's ES module imports to the hashed names.

    Without it, a hashed ``verify.js`` imports ``./verify_state.js`` by its plain name, which is
    cached briefly and can come from another release than the module that imports it.
    """

    support_js_module_import_aggregation = True
