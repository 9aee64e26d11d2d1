"""What an erasure of a subject needs beyond memory's own rows: the services that derived
something from the erased memories, and the key of the audit row's subject digest."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from rae_common.clients import GraphClient, MlClient, ReflectionClient

__all__ = ["Downstream", "subject_digest"]


@dataclass(frozen=True, slots=True)
class Downstream:
    reflection: ReflectionClient
    graph: GraphClient
    ml: MlClient
    # ERASURE_AUDIT_KEY; None: the audit row keeps no digest of the subject.
    audit_key: bytes | None = None


def subject_digest(key: bytes | None, tenant_id: str, subject: str) -> str | None:
    """HMAC-SHA256 of the tenant and the subject: the same subject in two tenants gives two
    digests, and without the key no list of names can be hashed to find it."""
    if not key:
        return None
    return hmac.new(key, f"{tenant_id}\x00{subject}".encode(), hashlib.sha256).hexdigest()
