"""``vidseek serve``: an HTTP search service over one store, with a web page at ``/``.

    GET  /                           the search page (static HTML + JS, no build step)
    GET  /search, POST /search       text search: q, k, aggregation, tau, rerank, alpha, depth, filters
    POST /search/image               search by image: multipart ``file`` (JPEG, PNG, WebP), text search's
                                     parameters as query parameters, ``q`` (optional) and ``weight`` to fuse text
    POST /search/clip                search by video clip: multipart ``file``; start, end, k, alignment knobs
    GET  /search/clip/{id}           the same with a part (start, end) of an indexed video
    POST /rerank                     CLIPRerank of a client's candidate list, frame evidence from the store
    GET  /videos/{id}                a video's row (no vectors)
    GET  /videos/{id}/thumbnail?t=   JPEG of the frame shown at t seconds (320 px wide)
    GET  /videos/{id}/file           the video file, with HTTP range requests (browsers seek with them)
    POST /ingest, GET /ingest/{job}  index a SOURCE through the service's own store; one job at a time
    GET  /ingest                     recent ingest jobs
    GET  /info                       model stamp, videos by status, frame rows
    GET  /healthz                    liveness (no token needed)
    GET  /openapi.json, /docs        the schema

**Serving while indexing.** Milvus Lite lets one process open a store, so the service is the one writer:
it opens the store once, searches it, and runs index jobs itself (``POST /ingest`` runs
``vidseek.pipeline.index_job.run_index(cfg, store=<the service's store>)`` in a background thread; decoding and
encoding still run on Ray, the writes go through the service's connection under a write lock). Searches
go on while a job writes; a video appears in results once its video row is written (frames first, row
last), never half-indexed, and cached frame vectors of a video are dropped whenever it is written. A second
``POST /ingest`` while a job runs gets 409. Stopping the service stops a running job; re-running the same
ingest resumes it (finished videos are skipped). The other combinations fail fast with what to do:

- ``vidseek index SOURCE --store S`` while a service holds ``S``: the store's lock refuses it after its
  lock wait, with a ``StoreError`` that says to stop the other process or go through ``vidseek serve``:
  send the source to the running service's ``POST /ingest`` instead, or stop the service first;
- ``vidseek serve --store S`` while an index job holds ``S``: refused at startup with the same advice;
- with a Milvus server URI (``http://host:19530``) both can run at once: the server allows many clients.

**Security.** Binds 127.0.0.1 by default and then only answers requests whose Host header names the
loopback (no DNS rebinding). Binding any other address needs a token (``--token`` or ``VIDSEEK_TOKEN``);
every request except ``/``, ``/static/*`` and ``/healthz`` must then carry ``Authorization: Bearer TOKEN``
(compared in constant time). Media URLs (thumbnail, file) also accept ``?token=`` so that ``<img>`` and
``<video>`` elements can load them; tokens are redacted from the access log and the page sends
``Referrer-Policy: no-referrer``. Videos are addressed by id only: the file endpoints serve the path the
store records for an ``ok`` video, and only while that file is still the one indexed (the id hashes its
path, size and mtime: a changed file or a swapped symlink is not served), never a client-supplied path. Ingest reads only under ``--ingest-root``
directories (off when none is given; symlinks and list-file entries that resolve outside are refused).
Limits (``Limits``): query length, k, depth, filters, candidates and request body size (413; uploads
have their own: ``max_image_bytes``, ``max_clip_bytes``). Filters are
typed key/op/value (or ``key=value`` strings through ``vidseek.store.filters.parse_user_filter``), never pasted
into an expression. Errors are JSON with 4xx codes; cross-origin POSTs are refused.
"""

from vidseek.apps.service.app import create_app
from vidseek.apps.service.schemas import Limits

__all__ = ["Limits", "create_app"]
