"""A local Azure AI Search service: the documented REST subset that ``azure-search-documents`` sends.

Over HTTPS with a throw-away certificate, because azure-core sends bearer tokens over TLS only::

    with AISearchServer() as search:
        client = SearchClient(search.url, "kb", StaticTokenCredential(), connection_verify=search.certificate)

Every request needs ``api-version`` (2023-11-01 or later) and ``Authorization: Bearer <token>`` (401
otherwise); an ``api-key`` is refused with 403, as by a service deployed with local authentication off.

* ``PUT``/``GET /indexes('name')`` (or ``/indexes/name``): create or update / read an index definition.
  Definitions are validated: one ``Edm.String`` key, attributes that fit each type, vector fields with
  ``dimensions`` (2 to 4,096) and a profile whose HNSW or exhaustive KNN algorithm uses the cosine metric,
  English or standard analyzers. An update may add fields and change ``retrievable``, nothing else.
* ``POST .../docs/search.index``: ``upload``, ``merge``, ``mergeOrUpload`` and ``delete`` actions (at most
  1,000), each answered with its own status (200, 201, 404 for a merge of a missing document, 400 for a
  bad key): HTTP 207 when one failed. An unknown field or a value of the wrong type fails the request.
* ``POST .../docs/search.post.search``: ``search`` in the simple syntax (terms, ``"phrases"``, ``prefix*``,
  ``+`` and ``-``, ``|``, parentheses, ``\\`` escapes; ``searchMode`` any or all) over the searchable fields,
  scored with BM25; ``filter`` in the OData subset the service documents (``eq ne gt ge lt le``, ``and or
  not``, parentheses, ``search.in``, ``any``/``all`` lambdas with the service's restrictions on string
  collections); ``vectorQueries`` of kind ``vector`` (exhaustive cosine, scored ``1 / (2 - cos)`` as the
  service reports cosine similarity, pre- or post-filtered); several rankings (hybrid) fused by reciprocal
  rank fusion (k = 60); ``select``, ``searchFields``, ``orderby`` on sortable fields and
  ``search.score()``, ``top``, ``skip`` (at most 100,000), ``count``. Pages hold ``top`` results, at most
  1,000 (50 without ``top``); the rest follows with ``@odata.nextLink`` and ``@search.nextPageParameters``.
* ``GET .../docs/$count``: the number of documents, as text.

Approximations: the English analyzer lower-cases, drops Lucene's English stop words and strips common
suffixes (plural, -ing, -ed, final -e) rather than running Porter's stemmer; documents are searchable as
soon as they are written (the service takes about a second). Anything else (other query types, facets,
highlights, semantic ranking, scoring profiles, complex fields, other resources) answers 400 naming what
is unsupported. Errors use the service's shape, ``{"error": {"code": ..., "message": ...}}``.

Modules: :mod:`~agent_runtime.testing.aisearch.schema` (index definitions, document values, errors),
:mod:`~agent_runtime.testing.aisearch.text` (analyzers, the simple query syntax, BM25),
:mod:`~agent_runtime.testing.aisearch.odata` (filters), :mod:`~agent_runtime.testing.aisearch.index` (one
index: indexing actions, search, paging) and :mod:`~agent_runtime.testing.aisearch.server` (the REST app
and :class:`AISearchServer`).
"""

from agent_runtime.testing.aisearch.index import DEFAULT_PAGE, MAX_ACTIONS, MAX_PAGE, MAX_SKIP, SearchIndex
from agent_runtime.testing.aisearch.odata import ODataFilter
from agent_runtime.testing.aisearch.schema import VECTOR, Document, SearchError, check_index, check_update
from agent_runtime.testing.aisearch.server import (
    CONTRIBUTOR,
    READER,
    ROLES,
    SERVICE_CONTRIBUTOR,
    AISearchServer,
    LocalSearchService,
    RecordedRequest,
    create_search_app,
)
from agent_runtime.testing.aisearch.text import analyze

__all__ = [
    "CONTRIBUTOR",
    "DEFAULT_PAGE",
    "MAX_ACTIONS",
    "MAX_PAGE",
    "MAX_SKIP",
    "READER",
    "ROLES",
    "SERVICE_CONTRIBUTOR",
    "VECTOR",
    "AISearchServer",
    "Document",
    "LocalSearchService",
    "ODataFilter",
    "RecordedRequest",
    "SearchError",
    "SearchIndex",
    "analyze",
    "check_index",
    "check_update",
    "create_search_app",
]
