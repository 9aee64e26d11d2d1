"""Regenerate the binary samples: `architecture-overview.pdf` and `onboarding-guide.docx`.

Run from anywhere: `.venv/bin/python samples/make_samples.py`. Needs the dev-only `fpdf2` and
`python-docx` (installed by `make install`). Dates and ZIP timestamps are fixed, so the same
library versions write the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import docx
from fpdf import FPDF
from fpdf.enums import XPos, YPos

HERE = Path(__file__).resolve().parent
FIXED_DATE = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)

# Each page: a heading, then (subheading, paragraph) pairs.
ARCHITECTURE_PAGES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "1. System overview",
        [
            (
                "Purpose",
                "This document describes how Tern robots and the Harbor fleet platform fit together. "
                "It is owned by Arjun Mehta (CTO) and reviewed every quarter; the last review was on "
                "3 March 2025.",
            ),
            (
                "Components",
                "Each Tern robot runs the motion firmware (Rust, owned by Tomas Okafor) and the perception "
                "stack (Python and C++, owned by Priya Raman) on an onboard computer. Harbor runs in the "
                "cloud or on premises and is owned by Mei Chen. Robots talk to Harbor over MQTT on the "
                "site network; Harbor talks to the customer's warehouse management system over REST.",
            ),
            (
                "Design principles",
                "A robot must stay safe without the network: the safety controller stops the robot on its "
                "own, and Harbor only ever sends goals, never motor commands. Every service in Harbor can "
                "be restarted without losing a task.",
            ),
        ],
    ),
    (
        "2. Data and storage",
        [
            (
                "Telemetry",
                "Robots send a status message every second and a full diagnostic snapshot every minute. "
                "Harbor keeps 30 days of status messages and 13 months of snapshots.",
            ),
            (
                "Storage decision",
                "On 12 March 2025 the architecture sync decided to move telemetry metadata from MongoDB to "
                "PostgreSQL with the pgvector extension, so that similar incidents can be found by "
                "embedding search. Raw sensor logs stay in object storage. Mei Chen writes the migration "
                "RFC; the migration must be finished before the Tern 2.0 release on 17 June 2025.",
            ),
            (
                "Events",
                "Harbor services exchange events through Kafka, one topic per domain (tasks, robots, "
                "charging). Events are kept for seven days.",
            ),
        ],
    ),
    (
        "3. Operations",
        [
            (
                "On-call",
                "Luis Ortega owns the on-call rotation. Each engineer is on call for one week at a time; "
                "the handover is on Monday at 10:00 CET. A page must be acknowledged within 15 minutes.",
            ),
            (
                "Service levels",
                "Harbor's availability target is 99.9 percent per month per site. A robot that loses its "
                "connection to Harbor finishes its current task and then parks at the nearest safe spot.",
            ),
            (
                "Incident reviews",
                "Every incident that stops a site for more than five minutes gets a blameless written "
                "review within five working days, shared with the customer.",
            ),
        ],
    ),
]

TABLE = "table"  # where `BUDDIES` goes among the paragraphs
ONBOARDING: list[tuple[str, str]] = [
    ("Title", "Onboarding Guide"),
    (
        "Normal",
        "Welcome to Northwind Robotics. This guide covers your first two weeks. Your team lead and your "
        "onboarding buddy are your first contacts for any question.",
    ),
    ("Heading 1", "Before your first day"),
    (
        "Normal",
        "People Operations (Sanne de Vries) sends your laptop to your home address one week before you "
        "start. It arrives with the disk encrypted; the password comes in a separate email.",
    ),
    ("Heading 1", "Your first week"),
    ("Heading 2", "Day one"),
    (
        "Normal",
        "Day one starts at 10:00 in the Rotterdam office with coffee and a tour. Dana Whitfield (CEO) "
        "gives a one-hour introduction to the company and the Tern 2.0 roadmap at 11:00.",
    ),
    ("List Bullet", "Collect your access badge from reception."),
    ("List Bullet", "Set up two-factor authentication for email and the Git server."),
    ("List Bullet", "Join the #ask-northwind and #announcements channels."),
    ("Heading 2", "Safety training"),
    (
        "Normal",
        "Everyone who enters the robot test hall must pass the safety training first. It takes half a day "
        "and is given by Tomás Okafor's Motion Control team every Tuesday at 13:00 in Eindhoven.",
    ),
    ("Heading 1", "Your buddy"),
    (
        "Normal",
        "Every new hire gets a buddy from another team for the first month. Buddies meet you for lunch "
        "in your first week and check in every Friday.",
    ),
    ("Heading 2", "Buddy pairs"),
    (TABLE, ""),
    ("Heading 1", "Who to ask"),
    (
        "Normal",
        "Laptop or account problems go to IT (it@northwind.example). Questions about salary, leave or "
        "contracts go to Sanne de Vries. Security questions go to Luis Ortega.",
    ),
]

BUDDIES = [
    ("Team", "Buddy from", "Contact"),
    ("Perception", "Fleet platform", "Mei Chen"),
    ("Motion Control", "Perception", "Priya Raman"),
    ("Fleet platform", "Motion Control", "Tomás Okafor"),
]


def make_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_title("Northwind Robotics Architecture Overview")
    pdf.set_author("Arjun Mehta")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_margins(20, 20, 20)
    for heading, parts in ARCHITECTURE_PAGES:
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=16)
        pdf.cell(0, 10, heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
        for subheading, paragraph in parts:
            pdf.set_font("Helvetica", style="B", size=12)
            pdf.cell(0, 8, subheading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_font("Helvetica", size=11)
            pdf.multi_cell(0, 6, paragraph, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(4)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    props = document.core_properties
    props.title = "Onboarding Guide"
    props.author = "Sanne de Vries"
    props.last_modified_by = "Sanne de Vries"
    props.created = props.modified = FIXED_DATE.replace(tzinfo=None)
    props.revision = 1
    for style, text in ONBOARDING:
        if style == TABLE:
            table = document.add_table(rows=0, cols=3)
            for row in BUDDIES:
                for cell, value in zip(table.add_row().cells, row, strict=True):
                    cell.text = value
        else:
            document.add_paragraph(text, style=style)
    out = io.BytesIO()
    document.save(out)
    return _with_fixed_timestamps(out.getvalue())


def _with_fixed_timestamps(package: bytes) -> bytes:
    """Rewrite the ZIP with a fixed date on every entry (python-docx stamps the current time)."""
    stamp = FIXED_DATE.timetuple()[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, source.read(info))
    return out.getvalue()


def main() -> None:
    (HERE / "architecture-overview.pdf").write_bytes(make_pdf())
    (HERE / "onboarding-guide.docx").write_bytes(make_docx())


if __name__ == "__main__":
    main()
