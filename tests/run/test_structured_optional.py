"""Optional properties of an output_schema may be null in strict mode, enums included."""

from __future__ import annotations

from flowkit import run_flow

from flowrun.output import strict_schema


def test_an_optional_enum_property_accepts_null(tmp_path, emu):
    emu.script({"steps": {"rate": [{"output": {"score": 3, "level": None}}]}})
    result = run_flow(tmp_path, emu, """
        name: optional-enum
        steps:
          rate:
            input: Rate it.
            output_schema:
              type: object
              required: [score]
              properties:
                score: {type: integer}
                level: {type: string, enum: [low, high]}
    """)
    assert result.status == "succeeded", result.steps["rate"].result.error
    assert result.steps["rate"].result.output == {"score": 3, "level": None}
    (body,) = emu.bodies("rate")
    sent = body["text"]["format"]["schema"]["properties"]["level"]
    assert sent == {"type": ["string", "null"], "enum": ["low", "high", None]}


def test_strict_schema_adds_null_to_optional_enums_only():
    schema = {
        "type": "object",
        "required": ["kept"],
        "properties": {
            "kept": {"type": "string", "enum": ["a", "b"]},
            "untyped": {"enum": [1, 2]},
            "already": {"type": ["string", "null"], "enum": ["x", None]},
        },
    }
    props = strict_schema(schema)["properties"]
    assert props["kept"] == {"type": "string", "enum": ["a", "b"]}
    assert props["untyped"] == {"enum": [1, 2, None]}
    assert props["already"] == {"type": ["string", "null"], "enum": ["x", None]}
    assert schema["properties"]["untyped"] == {"enum": [1, 2]}  # the flow's own schema is untouched
