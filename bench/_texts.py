"""Deterministic, realistic-looking texts for the benchmarks: memories an agent would store
(people, projects, preferences, decisions, dates) and questions a user would ask.

Everything is generated from a seeded `random.Random`, so a given seed always gives the same
texts. `TextFactory` never returns the same text twice (it remembers what it produced), so a
benchmark can ask it for "fresh" texts that neither the database nor the embedding cache has seen
within one invocation; a run tag (`session`) makes them differ across invocations too.
"""

# ruff: noqa: E501  (templates are data: one sentence a line reads best)
from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["TextFactory"]

FIRST = (
    "Alice", "Bob", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal",
    "Lena", "Marco", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Samir", "Tara", "Ugo", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe", "Anika", "Bruno", "Chloe", "Diego", "Emeka", "Fatima", "Gustav",
    "Hana", "Ivan", "Julia", "Kofi", "Leila", "Mateo", "Noor", "Olga", "Pablo", "Rania", "Sven",
    "Tomas", "Uma", "Viktor", "Yara",
)  # fmt: skip
LAST = (
    "Novak", "Schmidt", "Okafor", "Tanaka", "Rossi", "Haddad", "Larsen", "Moreau", "Kowalski",
    "Silva", "Nguyen", "Petrov", "Fischer", "Ibrahim", "Jensen", "Costa", "Dubois", "Yilmaz",
    "Kim", "Garcia", "Murphy", "Svensson", "Mendes", "Kaur",
)  # fmt: skip
PROJECTS = (
    "Atlas", "Borealis", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Helios", "Iris", "Juniper",
    "Kestrel", "Lumen", "Meridian", "Nimbus", "Orion", "Pulsar", "Quartz", "Redwood", "Sequoia",
    "Tundra", "Umbra", "Vertex", "Willow", "Zephyr",
)  # fmt: skip
TEAMS = (
    "platform", "payments", "search", "mobile", "data", "security", "billing", "onboarding",
    "infrastructure", "support", "growth", "design",
)  # fmt: skip
DRINKS = (
    "green tea", "black coffee", "oat milk lattes", "sparkling water", "chai", "espresso",
    "peppermint tea", "cold brew", "hot chocolate", "matcha",
)  # fmt: skip
FOODS = (
    "vegetarian curry", "sushi", "pasta", "spicy ramen", "falafel wraps", "Greek salad",
    "dumplings", "tacos", "lentil soup", "grilled salmon",
)  # fmt: skip
TOOLS = (
    "Vim", "VS Code", "PyCharm", "Emacs", "Jupyter notebooks", "the terminal", "Notion",
    "a paper notebook", "Obsidian", "Excel",
)  # fmt: skip
TIMES = (
    "early mornings", "late afternoons", "Tuesday mornings", "Friday afternoons", "after lunch",
    "before nine", "the first hour of the day", "Wednesday evenings",
)  # fmt: skip
CHANNELS = ("email", "Slack", "a short call", "written proposals", "pull request comments", "video calls")
DECISIONS = (
    "migrate the nightly builds to the new Kubernetes cluster",
    "replace the legacy cron jobs with a proper job scheduler",
    "move the customer database to PostgreSQL 18",
    "drop support for the old mobile API by the end of the quarter",
    "adopt feature flags for every risky release",
    "switch the message queue from RabbitMQ to Kafka",
    "freeze new features until the latency regression is fixed",
    "hire two more engineers for the on-call rotation",
    "run the load tests every night instead of every week",
    "rewrite the import pipeline in Rust",
    "keep the monolith and extract only the billing module",
    "store audit logs for seven years",
    "encrypt every backup with a customer-managed key",
    "cut the release cycle from four weeks to two",
    "postpone the redesign of the dashboard",
    "use OpenTelemetry for all new services",
)  # fmt: skip
REASONS = (
    "because the old setup kept timing out",
    "after the outage in the previous sprint",
    "to reduce the monthly cloud bill",
    "since the auditors asked for it",
    "because two large customers requested it",
    "to make on-call less painful",
    "after a long discussion in the architecture review",
    "because the vendor ends support next year",
)  # fmt: skip
EVENTS = ("launch", "beta release", "security review", "design review", "quarterly planning", "demo", "retrospective", "migration")  # fmt: skip
PLACES = (
    "Berlin",
    "Lisbon",
    "Toronto",
    "Nairobi",
    "Singapore",
    "Madrid",
    "Oslo",
    "Seoul",
    "Austin",
    "Warsaw",
)
HOBBIES = ("climbing", "sailing", "chess", "running marathons", "baking bread", "photography", "cycling", "playing the cello")  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
MEETINGS = ("standup", "one-on-one", "planning meeting", "review", "sync", "retrospective", "kickoff")

Pick = Callable[[tuple[str, ...]], str]


def _person(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


def _date(r: random.Random) -> str:
    return f"{r.randint(1, 28)} {r.choice(MONTHS)} {r.choice((2024, 2025, 2026))}"


# Memories: 10-25 words each once a detail is appended.
_MEMORY_TEMPLATES: tuple[Callable[[random.Random], str], ...] = (
    lambda r: (
        f"{_person(r)} prefers {r.choice(DRINKS)} during {r.choice(TIMES)} and dislikes meetings before ten."
    ),
    lambda r: (
        f"{_person(r)} said that {r.choice(FOODS)} is their favourite lunch when the team eats together."
    ),
    lambda r: f"The {r.choice(TEAMS)} team decided to {r.choice(DECISIONS)} {r.choice(REASONS)}.",
    lambda r: f"On {_date(r)} {_person(r)} agreed to {r.choice(DECISIONS)} for project {r.choice(PROJECTS)}.",
    lambda r: (
        f"Project {r.choice(PROJECTS)} has its {r.choice(EVENTS)} planned for {_date(r)} in {r.choice(PLACES)}."
    ),
    lambda r: (
        f"{_person(r)} leads project {r.choice(PROJECTS)} and reports to {_person(r)} on the {r.choice(TEAMS)} team."
    ),
    lambda r: (
        f"{_person(r)} likes to receive feedback through {r.choice(CHANNELS)} rather than in large meetings."
    ),
    lambda r: (
        f"{_person(r)} writes code in {r.choice(TOOLS)} and keeps the notes for project {r.choice(PROJECTS)} there."
    ),
    lambda r: (
        f"{_person(r)} moved to {r.choice(PLACES)} in {r.choice(MONTHS)} and now works remotely for the {r.choice(TEAMS)} team."
    ),
    lambda r: f"{_person(r)} spends weekends {r.choice(HOBBIES)} and asked not to be paged on Saturdays.",
    lambda r: (
        f"The {r.choice(EVENTS)} of project {r.choice(PROJECTS)} slipped to {_date(r)} {r.choice(REASONS)}."
    ),
    lambda r: (
        f"{_person(r)} is allergic to peanuts, so order {r.choice(FOODS)} for the {r.choice(EVENTS)} dinner."
    ),
    lambda r: (
        f"{_person(r)} will be on parental leave from {_date(r)} and {_person(r)} covers project {r.choice(PROJECTS)}."
    ),
    lambda r: (
        f"Budget for project {r.choice(PROJECTS)} was raised by {r.randint(5, 40)} percent after the {r.choice(EVENTS)}."
    ),
    lambda r: (
        f"{_person(r)} prefers {r.choice(CHANNELS)} for status updates about project {r.choice(PROJECTS)}."
    ),
    lambda r: (
        f"The customer in {r.choice(PLACES)} asked {_person(r)} whether project {r.choice(PROJECTS)} supports single sign-on."
    ),
    lambda r: f"{_person(r)} and {_person(r)} chose to {r.choice(DECISIONS)} at the {r.choice(EVENTS)}.",
    lambda r: (
        f"{_person(r)} drinks {r.choice(DRINKS)}, eats {r.choice(FOODS)} and starts work during {r.choice(TIMES)}."
    ),
)
_DETAILS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"Noted at the {r.choice(WEEKDAYS)} {r.choice(MEETINGS)} on {_date(r)}.",
    lambda r: f"Mentioned by {r.choice(FIRST)} in sprint {r.randint(1, 120)}.",
    lambda r: f"Confirmed on {_date(r)} in ticket {r.choice(PROJECTS).upper()}-{r.randint(100, 9999)}.",
    lambda r: (
        f"Source: {r.choice(MEETINGS)} notes from {r.choice(PLACES)}, {r.choice(MONTHS)} {r.randint(1, 28)}."
    ),
)
_QUESTIONS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"What does {r.choice(FIRST)} like to drink in the morning?",
    lambda r: f"Who leads project {r.choice(PROJECTS)} these days?",
    lambda r: f"When is the {r.choice(EVENTS)} of project {r.choice(PROJECTS)}?",
    lambda r: f"Why did the {r.choice(TEAMS)} team decide to {r.choice(DECISIONS)}?",
    lambda r: f"How does {_person(r)} prefer to get feedback?",
    lambda r: f"Which editor does {r.choice(FIRST)} use for project {r.choice(PROJECTS)}?",
    lambda r: f"Is anyone on the {r.choice(TEAMS)} team allergic to peanuts?",
    lambda r: f"Where does {_person(r)} live now?",
    lambda r: f"What food should we order for {r.choice(FIRST)} at the {r.choice(EVENTS)}?",
    lambda r: f"Who covers project {r.choice(PROJECTS)} while {r.choice(FIRST)} is on leave?",
    lambda r: f"What did we decide about {r.choice(DECISIONS).split(' the ', 1)[-1]}?",
    lambda r: f"How much was the budget of project {r.choice(PROJECTS)} raised after the {r.choice(EVENTS)}?",
    lambda r: (
        f"Does project {r.choice(PROJECTS)} support single sign-on for the customer in {r.choice(PLACES)}?"
    ),
    lambda r: f"What does {_person(r)} do on weekends?",
    lambda r: (
        f"Which decisions did {r.choice(FIRST)} agree to in {r.choice(MONTHS)} {r.choice((2024, 2025, 2026))}?"
    ),
    lambda r: f"When does {r.choice(FIRST)} usually start working and what do they drink?",
)


class TextFactory:
    """Fresh (never repeated) texts from a seed. `session` tags ingest texts of one invocation."""

    def __init__(self, seed: int, session: str = "") -> None:
        self.rand = random.Random(seed)
        self.session = session
        self._seen: set[str] = set()

    def _fresh(self, make: Callable[[random.Random], str], attempts: int = 1000) -> str:
        for _ in range(attempts):
            text = make(self.rand)
            if text not in self._seen:
                self._seen.add(text)
                return text
        raise RuntimeError("text templates exhausted: could not produce a new distinct text")

    def sentence(self) -> str:
        """A memory-like sentence (about 10-20 words)."""
        return self._fresh(lambda r: r.choice(_MEMORY_TEMPLATES)(r))

    def memory(self, tag: str = "") -> str:
        """A fresh sentence (about 10-25 words) ending with `tag` (e.g. the run id), so that the same
        sentence from another invocation or run is a different text (no dedup, no cache hit)."""
        suffix = f" (ref {tag})" if tag else ""
        return self._fresh(lambda r: f"{r.choice(_MEMORY_TEMPLATES)(r)}{suffix}")

    def detail_for(self, sentence: str) -> str:
        """`sentence` with a distinguishing detail (a date, a name, a ticket) appended."""
        return self._fresh(lambda r: f"{sentence} {r.choice(_DETAILS)(r)}")

    def question(self) -> str:
        return self._fresh(lambda r: r.choice(_QUESTIONS)(r))

    def memories(self, n: int, tag: str = "") -> list[str]:
        return [self.memory(tag) for _ in range(n)]

    def questions(self, n: int) -> list[str]:
        return [self.question() for _ in range(n)]
