"""The offline extractive provider and its structured output, with a word-counting tokenizer."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from rae_common.contracts.ml import LOCAL_NOTICE
from rae_ml.domain.extractive import extractive_completion
from rae_ml.domain.generation import ChatCall, InvalidSchema, Message, UnsupportedSchema
from rae_ml.domain.schemas import check_schema, validation_error


class WordCounter:
    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]


COUNTER = WordCounter()

REPORT = (
    "The quarterly review covered the Berlin office. "
    "Revenue in the Berlin office grew by twelve percent, and the Berlin team hired four engineers. "
    "The coffee machine was repaired on Tuesday. "
    "Customer churn in the Berlin office fell while revenue grew. "
    "Parking remains difficult."
)


def call(*messages: tuple[str, str], max_tokens: int = 200, schema: dict | None = None) -> ChatCall:
    return ChatCall(
        model="local-extractive",
        messages=[Message(role, content) for role, content in messages],
        max_tokens=max_tokens,
        temperature=0.0,
        json_schema=schema,
    )


def test_picks_the_salient_sentences_in_their_original_order() -> None:
    completion = extractive_completion(call(("user", REPORT)), COUNTER)

    assert completion.content == (
        "Revenue in the Berlin office grew by twelve percent, and the Berlin team hired four engineers. "
        "Customer churn in the Berlin office fell while revenue grew."
    )
    assert completion.finish_reason == "stop"
    assert completion.notice == LOCAL_NOTICE
    assert completion.prompt_tokens == len(REPORT.split())
    assert completion.completion_tokens == len(completion.content.split())


def test_the_same_input_gives_the_same_answer() -> None:
    request = call(("system", "Summarise for the board."), ("user", REPORT))
    assert extractive_completion(request, COUNTER) == extractive_completion(request, COUNTER)


def test_assistant_messages_are_not_a_source_but_count_as_prompt() -> None:
    request = call(("user", "Alice likes tea."), ("assistant", "Bob likes coffee a lot."))
    completion = extractive_completion(request, COUNTER)
    assert completion.content == "Alice likes tea."
    assert completion.prompt_tokens == 3 + 5


def test_max_tokens_drops_sentences_that_do_not_fit_and_says_so() -> None:
    completion = extractive_completion(call(("user", REPORT), max_tokens=12), COUNTER)
    assert completion.content == "Customer churn in the Berlin office fell while revenue grew."
    assert completion.finish_reason == "length"


def test_max_tokens_cuts_a_single_long_sentence_at_a_word() -> None:
    completion = extractive_completion(call(("user", "one two three four five six seven.")), COUNTER)
    assert completion.content == "one two three four five six seven."
    short = extractive_completion(call(("user", "one two three four five six seven."), max_tokens=3), COUNTER)
    assert (short.content, short.finish_reason, short.completion_tokens) == ("one two three", "length", 3)


SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "actions", "priority", "urgent", "score", "status", "owner"],
    "properties": {
        "summary": {"type": "string", "maxLength": 60},
        "actions": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "urgent": {"type": "boolean"},
        "score": {"type": "number", "default": 0.5},
        "status": {"enum": ["open", "closed"]},
        "owner": {"$ref": "#/$defs/person"},
    },
    "$defs": {
        "person": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "email": {"type": ["string", "null"]}},
        }
    },
}


def test_structured_output_is_built_from_the_input_and_validates() -> None:
    text = (
        "Decisions from the planning meeting about the Berlin launch.\n"
        "- Book the venue\n- Send the invitations\n- Order catering\n- Print badges\n"
        "The Berlin launch date stays in May."
    )
    completion = extractive_completion(call(("user", text), schema=SCHEMA), COUNTER)

    value = json.loads(completion.content)
    assert validation_error(SCHEMA, value) is None
    assert value["actions"] == ["Book the venue", "Send the invitations", "Order catering"]
    assert value["priority"] == 1 and value["urgent"] is False and value["score"] == 0.5
    assert value["status"] == "open"
    assert len(value["summary"]) <= 60 and "Berlin launch" in value["summary"]
    assert isinstance(value["owner"]["name"], str)
    assert completion.notice == LOCAL_NOTICE


def test_structured_output_shrinks_its_strings_to_fit_max_tokens() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    long_text = " ".join(f"word{i}" for i in range(40)) + ". " + " ".join(f"term{i}" for i in range(30)) + "."
    completion = extractive_completion(call(("user", long_text), schema=schema, max_tokens=20), COUNTER)
    assert completion.completion_tokens is not None and completion.completion_tokens <= 20
    assert completion.finish_reason == "length"
    assert validation_error(schema, json.loads(completion.content)) is None


def test_a_schema_no_selection_can_satisfy_is_unsupported() -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"}}}
    with pytest.raises(UnsupportedSchema, match="does not match"):
        extractive_completion(call(("user", "Nothing resembling a code here."), schema=schema), COUNTER)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "strang"},
        {"type": "object", "properties": {"x": {"minLength": -1}}},
        {"type": "object", "properties": {"x": {"$ref": "https://schemas.example/x.json"}}},
    ],
)
def test_an_invalid_or_remote_schema_is_refused(schema: dict) -> None:
    with pytest.raises(InvalidSchema):
        check_schema(schema)


def test_validation_error_names_the_place_and_the_problem() -> None:
    assert validation_error(SCHEMA["$defs"]["person"], {"name": 3}) == "at name: 3 is not of type 'string'"
    assert validation_error(SCHEMA["$defs"]["person"], {"name": "Ann"}) is None
