"""Records built without their NamedTuple constructor (created_record, next_version) are the records it builds."""

from __future__ import annotations

from bridge.store import StoredValue, VariableRecord, created_record


def test_created_record_is_the_record_the_constructor_builds() -> None:
    fields = {
        "name": "x",
        "type": "float",
        "value": StoredValue(b"\x11"),
        "constraints": {"min": 0},
        "metadata": {"unit": "s"},
        "access_rules": (),
    }
    built = created_record(
        "var_0123",
        "s",
        "writer",
        7,
        12.5,
        fields,
        dependencies=("var_dep",),
        last_update_metadata={"source": "import"},
        metadata_bytes=30,
        dependency_kinds=(("var_dep", "constraint", ()),),
        version=3,
    )
    assert built == VariableRecord(
        id="var_0123",
        session_id="s",
        name="x",
        type="float",
        value=StoredValue(b"\x11"),
        constraints={"min": 0},
        metadata={"unit": "s"},
        dependencies=("var_dep",),
        access_rules=(),
        version=3,
        create_revision=7,
        mod_revision=7,
        created_at=12.5,
        updated_at=12.5,
        updated_by="writer",
        last_update_metadata={"source": "import"},
        metadata_bytes=30,
        dependency_kinds=(("var_dep", "constraint", ()),),
    )
    assert type(built) is VariableRecord and len(built) == len(VariableRecord._fields)
    later = built.next_version(StoredValue(b"\x22"), 8, 13.0, "other", {}, 0)
    assert later == built._replace(
        value=StoredValue(b"\x22"),
        version=4,
        mod_revision=8,
        updated_at=13.0,
        updated_by="other",
        last_update_metadata={},
        metadata_bytes=0,
    )
