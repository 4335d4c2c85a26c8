"""A flow output whose template fails names the output and where it is written."""

from __future__ import annotations

from flowkit import record, run_flow


def test_a_failing_output_is_named_with_its_position(tmp_path, emu):
    result = run_flow(tmp_path, emu, """
        name: outputs
        steps:
          a: {input: hello}
        outputs:
          fine: "{{ steps.a.text }}"
          broken: "{{ steps.a.output.missing }}"
    """)
    assert result.status == "failed"
    where = f"{tmp_path / 'flow.yaml'}:7:11"
    assert result.error.startswith(f"output 'broken' ({where}): "), result.error
    assert "missing" in result.error
    assert record(result)["error"] == result.error
    assert result.outputs == {}
