"""The SQL repositories and unit of work against real Postgres and SQLite (``db_url``)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.ports import AuditQuery
from app.domain.audit import AuditEvent, AuditResult
from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig
from app.domain.errors import AlreadyExists, Conflict, Reason, ServiceUnavailable
from app.domain.local_kek import LocalInstanceKey
from app.domain.module import CryptoModule, EncryptedFieldConfig, ModuleKey
from app.domain.policy import ModuleAccessPolicy
from app.domain.values import (
    AccessResult,
    Algorithm,
    ExternalKeyStatus,
    KeyState,
    KmsProvider,
    ModuleState,
    Operation,
    TargetType,
)
from app.infra.db import tables
from app.infra.db.engine import create_engine
from app.infra.db.errors import ConstraintViolation
from app.infra.db.uow import SqlaUnitOfWork, SqlaUnitOfWorkFactory
from tests.fixtures.db import dump_all_tables

NOW = datetime(2026, 11, 28, 12, 30, 15, 123456, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# --- entity factories -------------------------------------------------------------------------


def make_config(**changes: Any) -> ExternalKmsConfig:
    config = ExternalKmsConfig(
        id=uuid.uuid4(),
        instance_id="instance-1",
        provider=KmsProvider.AWS,
        key_id="arn:aws:kms:eu-west-1:111122223333:key/abc",
        region="eu-west-1",
        sync_interval=timedelta(minutes=45),
        created_at=NOW,
        updated_at=at(1),
        active=True,
        external_key_status=ExternalKeyStatus.PENDING_DELETION,
        status_reason="scheduled by the customer",
        deletion_date=at(86400 * 7),
        last_sync_at=at(2),
        unavailable_since=at(3),
    )
    return dataclasses.replace(config, **changes)


def make_ekek(**changes: Any) -> ExternalInstanceKey:
    ekek = ExternalInstanceKey(
        id=uuid.uuid4(),
        wrapped_kek=b"\x00wrapped-kek\xff" + uuid.uuid4().bytes,
        kms_key_arn="arn:aws:kms:eu-west-1:111122223333:key/abc",
        rotation_marker="rotation-0",
        encryption_context={"ekms:instance": "instance-1", "ekms:kek": "k1"},
        fingerprint="fp-" + uuid.uuid4().hex,
        created_at=NOW,
        rewrapped_at=at(5),
    )
    return dataclasses.replace(ekek, **changes)


def make_module(name: str = "global.payroll", **changes: Any) -> CryptoModule:
    module = CryptoModule(
        id=uuid.uuid4(),
        name=name,
        algorithm=Algorithm.AES_256_SIV,
        created_at=NOW,
        updated_at=at(1),
        external_wrap=False,
        default_access=AccessResult.TRACK,
        state=ModuleState.DRAFT,
        description="payroll data",
        rotation_period=timedelta(days=90),
        destroy_deactivated_after=timedelta(days=365, hours=6),
    )
    return dataclasses.replace(module, **changes)


def make_key(module_id: uuid.UUID, version: int = 1, **changes: Any) -> ModuleKey:
    key = ModuleKey(
        module_id=module_id,
        version=version,
        wrapped_dek=b"\x01dek\x00" + uuid.uuid4().bytes,
        kek_id=None,
        state=KeyState.ACTIVE,
        created_at=NOW,
        activated_at=at(1),
        state_changed_at=at(1),
        encryption_count=7,
    )
    return dataclasses.replace(key, **changes)


def make_field(module_id: uuid.UUID, **changes: Any) -> EncryptedFieldConfig:
    field = EncryptedFieldConfig(
        id=uuid.uuid4(),
        table="employees",
        column="ssn",
        module_id=module_id,
        created_at=NOW,
        updated_at=at(1),
        active=False,
    )
    return dataclasses.replace(field, **changes)


def make_policy(module_id: uuid.UUID, **changes: Any) -> ModuleAccessPolicy:
    policy = ModuleAccessPolicy(
        id=uuid.uuid4(),
        module_id=module_id,
        target_type=TargetType.ROLE,
        target="payroll.reader",
        operations=frozenset({Operation.DECRYPT, Operation.REWRAP}),
        result=AccessResult.STRICT_REJECT,
        created_at=NOW,
        updated_at=at(1),
        active=False,
        description="no rewrap for readers",
    )
    return dataclasses.replace(policy, **changes)


async def add_module(uow_factory: SqlaUnitOfWorkFactory, **changes: Any) -> CryptoModule:
    module = make_module(**changes)
    async with uow_factory() as uow:
        await uow.modules.add(module)
        await uow.commit()
    return module


# --- schema coverage --------------------------------------------------------------------------

# A domain field stored under another name: a version under the local KEK names it there; a
# policy's justification requirement is its flag and its codes.
STORED_AS = {"local_wrap": "local_kek_id", "justification": "require_justification"}


@pytest.mark.parametrize(
    ("entity", "table"),
    [
        (ExternalKmsConfig, tables.ekms_config),
        (ExternalInstanceKey, tables.external_instance_keys),
        (CryptoModule, tables.crypto_modules),
        (ModuleKey, tables.module_keys),
        (EncryptedFieldConfig, tables.encrypted_field_configs),
        (ModuleAccessPolicy, tables.module_access_policies),
        (AuditEvent, tables.audit_events),
        (LocalInstanceKey, tables.local_instance_keys),
    ],
)
def test_every_domain_field_has_a_column(entity: type, table: Table) -> None:
    """A field added to the domain must be stored, or reloads would silently drop it."""
    columns = set(table.columns.keys())
    for field in dataclasses.fields(entity):
        names = {field.name, f"{field.name}_seconds", f"{field.name}_name"}
        names |= {STORED_AS.get(field.name, field.name)}
        stored = names & columns
        assert stored, f"{entity.__name__}.{field.name} has no column in {table.name}"


# --- configuration ----------------------------------------------------------------------------


async def test_config_round_trip_and_save(uow_factory: SqlaUnitOfWorkFactory) -> None:
    config = make_config(created_at=NOW.astimezone(PLUS_TWO))
    async with uow_factory() as uow:
        assert await uow.config.get() is None
        await uow.config.add(config)
        await uow.commit()

    async with uow_factory() as uow:
        loaded = await uow.config.get()
    assert loaded == config
    assert loaded is not None
    for value in (loaded.created_at, loaded.updated_at, loaded.deletion_date, loaded.last_sync_at):
        assert_utc(value)
    assert loaded.sync_interval == timedelta(minutes=45)

    loaded.record_status(ExternalKeyStatus.ENABLED, at(60))
    loaded.update({"sync_interval": timedelta(hours=2)}, at(60))
    async with uow_factory() as uow:
        await uow.config.save(loaded)
        await uow.commit()
    assert loaded.revision == 1

    async with uow_factory() as uow:
        reloaded = await uow.config.get()
    assert reloaded == loaded
    assert reloaded is not None and reloaded.unavailable_since is None


async def test_second_config_is_already_configured(uow_factory: SqlaUnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.config.add(make_config())
        await uow.commit()

    async with uow_factory() as uow:
        with pytest.raises(AlreadyExists) as err:
            await uow.config.add(make_config(instance_id="another"))
        assert err.value.reason is Reason.ALREADY_CONFIGURED
        # The failed insert ran in a savepoint: the transaction is still usable.
        current = await uow.config.get()
        assert current is not None and current.instance_id == "instance-1"


async def test_config_is_a_singleton_in_the_schema(db_engine: AsyncEngine) -> None:
    async with uow_factory_for(db_engine)() as uow:
        await uow.config.add(make_config())
        await uow.commit()
    async with db_engine.connect() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(text("UPDATE ekms_config SET singleton = 2"))


def uow_factory_for(engine: AsyncEngine) -> SqlaUnitOfWorkFactory:
    return SqlaUnitOfWorkFactory(engine)


# --- optimistic concurrency, for every mutable entity -----------------------------------------


Loader = Callable[[SqlaUnitOfWork], Awaitable[Any]]
Saver = Callable[[SqlaUnitOfWork, Any], Awaitable[None]]


async def _seed_config(uow: SqlaUnitOfWork, module: CryptoModule) -> tuple[Loader, Saver]:
    await uow.config.add(make_config())
    return (lambda u: u.config.get()), (lambda u, e: u.config.save(e))


async def _seed_ekek(uow: SqlaUnitOfWork, module: CryptoModule) -> tuple[Loader, Saver]:
    ekek = make_ekek()
    await uow.instance_keys.add(ekek)
    return (lambda u: u.instance_keys.get(ekek.id)), (lambda u, e: u.instance_keys.save(e))


async def _seed_module(uow: SqlaUnitOfWork, module: CryptoModule) -> tuple[Loader, Saver]:
    return (lambda u: u.modules.get(module.id)), (lambda u, e: u.modules.save(e))


async def _seed_key(uow: SqlaUnitOfWork, module: CryptoModule) -> tuple[Loader, Saver]:
    await uow.keys.add(make_key(module.id))
    return (lambda u: u.keys.get(module.id, 1)), (lambda u, e: u.keys.save(e))


async def _seed_field(uow: SqlaUnitOfWork, module: CryptoModule) -> tuple[Loader, Saver]:
    field = make_field(module.id)
    await uow.fields.add(field)
    return (lambda u: u.fields.get(field.id)), (lambda u, e: u.fields.save(e))


async def _seed_policy(uow: SqlaUnitOfWork, module: CryptoModule) -> tuple[Loader, Saver]:
    policy = make_policy(module.id)
    await uow.policies.add(policy)
    return (lambda u: u.policies.get(policy.id)), (lambda u, e: u.policies.save(e))


@pytest.mark.parametrize(
    "seed",
    [_seed_config, _seed_ekek, _seed_module, _seed_key, _seed_field, _seed_policy],
    ids=["config", "instance_key", "module", "module_key", "field_config", "policy"],
)
async def test_stale_save_is_a_concurrent_update(
    uow_factory: SqlaUnitOfWorkFactory,
    seed: Callable[[SqlaUnitOfWork, CryptoModule], Awaitable[tuple[Loader, Saver]]],
) -> None:
    module = make_module()
    async with uow_factory() as uow:
        await uow.modules.add(module)
        load, save = await seed(uow, module)
        await uow.commit()

    async with uow_factory() as uow:
        first, second = await load(uow), await load(uow)
    assert first is not None and first.revision == 0

    async with uow_factory() as uow:
        await save(uow, first)
        await uow.commit()
    assert first.revision == 1

    async with uow_factory() as uow:
        with pytest.raises(Conflict) as err:
            await save(uow, second)
    assert err.value.reason is Reason.CONCURRENT_UPDATE
    assert second.revision == 0

    async with uow_factory() as uow:
        assert (await load(uow)).revision == 1


# --- instance keys ----------------------------------------------------------------------------


async def test_instance_keys_round_trip_and_one_active(
    uow_factory: SqlaUnitOfWorkFactory,
) -> None:
    old = make_ekek(rewrapped_at=None)
    async with uow_factory() as uow:
        assert await uow.instance_keys.get_active() is None
        await uow.instance_keys.add(old)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.instance_keys.get(old.id) == old
        assert await uow.instance_keys.get_active() == old
        with pytest.raises(Conflict) as err:
            await uow.instance_keys.add(make_ekek(created_at=at(10)))
        assert err.value.reason is Reason.CONCURRENT_UPDATE

    new = make_ekek(created_at=at(10))
    async with uow_factory() as uow:
        old.active = False
        await uow.instance_keys.save(old)
        await uow.instance_keys.add(new)
        await uow.commit()

    new.rewrapped(b"rewrapped-kek", "arn:aws:kms:eu-west-1:111122223333:key/def", "rot-1", at(20))
    async with uow_factory() as uow:
        await uow.instance_keys.save(new)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.instance_keys.get_active() == new
        assert await uow.instance_keys.list() == [old, new]
        assert await uow.instance_keys.get(uuid.uuid4()) is None
    loaded = await _reload_ekek(uow_factory, new.id)
    assert loaded.wrapped_kek == b"rewrapped-kek"
    assert_utc(loaded.rewrapped_at)


async def _reload_ekek(
    uow_factory: SqlaUnitOfWorkFactory, kek_id: uuid.UUID
) -> ExternalInstanceKey:
    async with uow_factory() as uow:
        key = await uow.instance_keys.get(kek_id)
    assert key is not None
    return key


# --- modules ----------------------------------------------------------------------------------


async def test_modules_round_trip(uow_factory: SqlaUnitOfWorkFactory) -> None:
    payroll = make_module("global.payroll")
    hr = make_module(
        "eu.hr.people",
        algorithm=Algorithm.AES_256_GCM,
        external_wrap=True,
        default_access=AccessResult.REJECT,
        state=ModuleState.PUBLISHED,
        description="",
        rotation_period=None,
        destroy_deactivated_after=None,
    )
    async with uow_factory() as uow:
        await uow.modules.add(payroll)
        await uow.modules.add(hr)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.modules.get(payroll.id) == payroll
        assert await uow.modules.get_by_name("eu.hr.people") == hr
        assert await uow.modules.get_by_name("global.nothing") is None
        assert await uow.modules.get(uuid.uuid4()) is None
        assert await uow.modules.list() == [hr, payroll]  # by name

    payroll.update(at(30), description="updated", state=ModuleState.PUBLISHED)
    async with uow_factory() as uow:
        await uow.modules.save(payroll)
        await uow.commit()
    async with uow_factory() as uow:
        loaded = await uow.modules.get(payroll.id)
    assert loaded == payroll and loaded.revision == 1
    assert_utc(loaded.updated_at)


async def test_duplicate_module_name_already_exists(uow_factory: SqlaUnitOfWorkFactory) -> None:
    await add_module(uow_factory, name="global.payroll")
    async with uow_factory() as uow:
        with pytest.raises(AlreadyExists) as err:
            await uow.modules.add(make_module("global.payroll"))
        assert err.value.reason is Reason.ALREADY_EXISTS
        assert "global.payroll" in err.value.message
        assert len(await uow.modules.list()) == 1


# --- module keys ------------------------------------------------------------------------------


async def test_module_keys_round_trip(uow_factory: SqlaUnitOfWorkFactory) -> None:
    module = await add_module(uow_factory)
    other = await add_module(uow_factory, name="global.other")
    ekek = make_ekek()
    destroyed = make_key(
        module.id,
        1,
        wrapped_dek=None,
        state=KeyState.DESTROYED,
        deactivated_at=at(2),
        destroyed_at=at(3),
        state_changed_at=at(3),
    )
    suspended = make_key(
        module.id, 2, kek_id=ekek.id, state=KeyState.SUSPENDED, suspended_from=KeyState.ACTIVE
    )
    active = make_key(module.id, 3, kek_id=ekek.id, encryption_count=2**40)
    other_key = make_key(other.id, 1)
    async with uow_factory() as uow:
        await uow.instance_keys.add(ekek)
        for key in (active, destroyed, other_key, suspended):
            await uow.keys.add(key)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.keys.list_for_module(module.id) == [destroyed, suspended, active]
        assert await uow.keys.get(module.id, 2) == suspended
        assert await uow.keys.get(module.id, 9) is None
        all_keys = await uow.keys.list_all()
    assert sorted(all_keys, key=lambda k: (k.module_id, k.version)) == all_keys
    assert {(k.module_id, k.version) for k in all_keys} == {
        (module.id, 1),
        (module.id, 2),
        (module.id, 3),
        (other.id, 1),
    }
    for key in all_keys:
        assert_utc(key.created_at)


async def test_module_key_conflicts(uow_factory: SqlaUnitOfWorkFactory) -> None:
    module = await add_module(uow_factory)
    async with uow_factory() as uow:
        await uow.keys.add(make_key(module.id, 1))
        await uow.commit()

    async with uow_factory() as uow:
        with pytest.raises(Conflict) as err:
            await uow.keys.add(make_key(module.id, 1, state=KeyState.DEACTIVATED))
        assert err.value.reason is Reason.CONCURRENT_UPDATE
        with pytest.raises(Conflict) as err:
            await uow.keys.add(make_key(module.id, 2))  # a second ACTIVE version
        assert err.value.reason is Reason.CONCURRENT_UPDATE
        await uow.keys.add(make_key(module.id, 2, state=KeyState.SUSPENDED))
        await uow.commit()

    async with uow_factory() as uow:
        second = await uow.keys.get(module.id, 2)
        assert second is not None
        second.state = KeyState.ACTIVE  # bypassing the domain, as a racing writer would
        with pytest.raises(Conflict) as err:
            await uow.keys.save(second)
        assert err.value.reason is Reason.CONCURRENT_UPDATE


async def test_rotation_order_deactivate_then_add(uow_factory: SqlaUnitOfWorkFactory) -> None:
    module = await add_module(uow_factory)
    first = make_key(module.id, 1)
    async with uow_factory() as uow:
        await uow.keys.add(first)
        await uow.commit()
    async with uow_factory() as uow:
        first.deactivate(at(60))
        await uow.keys.save(first)
        await uow.keys.add(make_key(module.id, 2))
        await uow.commit()
    async with uow_factory() as uow:
        states = [k.state for k in await uow.keys.list_for_module(module.id)]
    assert states == [KeyState.DEACTIVATED, KeyState.ACTIVE]


async def test_key_material_only_while_not_destroyed(db_engine: AsyncEngine) -> None:
    factory = uow_factory_for(db_engine)
    module = await add_module(factory)
    destroyed_with_material = make_key(module.id, 1, state=KeyState.DESTROYED)
    async with factory() as uow:
        with pytest.raises(ConstraintViolation, match="material_unless_destroyed") as err:
            await uow.keys.add(destroyed_with_material)
    # Postgres repeats the failing row in its message; none of it may travel with the error.
    assert err.value.__cause__ is None and err.value.__context__ is None
    assert destroyed_with_material.wrapped_dek is not None
    assert destroyed_with_material.wrapped_dek.hex() not in str(err.value)
    async with factory() as uow:
        with pytest.raises(ConstraintViolation, match="material_unless_destroyed"):
            await uow.keys.add(make_key(module.id, 1, wrapped_dek=None))
    async with factory() as uow:
        with pytest.raises(ConstraintViolation):
            await uow.keys.add(make_key(uuid.uuid4(), 1))  # no such module


async def test_parameters_are_hidden_from_errors(db_engine: AsyncEngine) -> None:
    module = await add_module(uow_factory_for(db_engine))
    secret = "s3cret-parameter"
    statement = text(
        "INSERT INTO crypto_modules (id, name, algorithm, created_at, updated_at, external_wrap,"
        " default_access, state, description)"
        " VALUES (:id, :name, 'AES-256-GCM', :now, :now, false, 'reject', 'draft', :secret)"
    )
    params = {"id": uuid.uuid4().hex, "name": module.name, "now": NOW, "secret": secret}
    async with db_engine.connect() as conn:
        with pytest.raises(IntegrityError) as err:  # the name is taken
            await conn.execute(statement, params)
    assert secret not in str(err.value)
    assert "hidden" in str(err.value)


async def test_add_usage_counts_without_revision(uow_factory: SqlaUnitOfWorkFactory) -> None:
    module = await add_module(uow_factory)
    one, two = make_key(module.id, 1, state=KeyState.DEACTIVATED), make_key(module.id, 2)
    async with uow_factory() as uow:
        await uow.keys.add(one)
        await uow.keys.add(two)
        await uow.commit()
    async with uow_factory() as uow:
        stale = await uow.keys.get(module.id, 2)
    assert stale is not None

    async with uow_factory() as uow:
        await uow.keys.add_usage({(module.id, 2): 5, (module.id, 1): 1, (uuid.uuid4(), 1): 3})
        await uow.keys.add_usage({(module.id, 2): 10, (module.id, 1): 0})
        await uow.keys.add_usage({})
        await uow.commit()

    # A lifecycle save after a usage flush neither conflicts nor loses the counts.
    stale.suspend(at(90))
    async with uow_factory() as uow:
        await uow.keys.save(stale)
        await uow.commit()

    async with uow_factory() as uow:
        keys = {k.version: k for k in await uow.keys.list_for_module(module.id)}
    assert keys[1].encryption_count == 7 + 1 and keys[1].revision == 0
    assert keys[2].encryption_count == 7 + 15 and keys[2].revision == 1
    assert keys[2].state is KeyState.SUSPENDED


# --- field configurations and policies --------------------------------------------------------


async def test_field_configs(uow_factory: SqlaUnitOfWorkFactory) -> None:
    module = await add_module(uow_factory)
    ssn = make_field(module.id)
    iban = make_field(module.id, column="iban", active=True)
    async with uow_factory() as uow:
        await uow.fields.add(ssn)
        await uow.fields.add(iban)
        with pytest.raises(AlreadyExists) as err:
            await uow.fields.add(make_field(module.id))
        assert "employees.ssn" in err.value.message
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.fields.get(ssn.id) == ssn
        assert await uow.fields.find("employees", "ssn") == ssn
        assert await uow.fields.find("employees", "name") is None
        assert await uow.fields.list() == [iban, ssn]

    ssn.active = True
    ssn.updated_at = at(100)
    async with uow_factory() as uow:
        await uow.fields.save(ssn)
        await uow.fields.delete(iban.id)
        await uow.fields.delete(uuid.uuid4())  # idempotent
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.fields.list() == [ssn]
        assert ssn.revision == 1


async def test_policies(uow_factory: SqlaUnitOfWorkFactory) -> None:
    module = await add_module(uow_factory)
    other = await add_module(uow_factory, name="global.other")
    first = make_policy(module.id)
    second = make_policy(
        module.id,
        created_at=at(5),
        target_type=TargetType.SUBJECT,
        target="svc-payroll",
        operations=frozenset(Operation),
        result=AccessResult.TRACK,
        active=True,
        description="",
    )
    elsewhere = make_policy(other.id)
    async with uow_factory() as uow:
        for policy in (second, elsewhere, first):
            await uow.policies.add(policy)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.policies.get(second.id) == second
        assert await uow.policies.get(uuid.uuid4()) is None
        assert await uow.policies.list_for_module(module.id) == [first, second]
        assert sorted(p.id for p in await uow.policies.list_all()) == sorted(
            p.id for p in (first, second, elsewhere)
        )

    first.operations = frozenset({Operation.ENCRYPT})
    first.result = AccessResult.REJECT
    async with uow_factory() as uow:
        await uow.policies.save(first)
        await uow.policies.delete(second.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.policies.list_for_module(module.id) == [first]
        assert (await uow.policies.get(first.id)) == first


# --- audit ------------------------------------------------------------------------------------


def make_events() -> list[AuditEvent]:
    actors = ["alice", "bob", "system:ekms"]
    actions = ["crypto.encrypt", "module.create", "kek.rotate"]
    events = []
    for i in range(12):
        events.append(
            AuditEvent(
                id=uuid.uuid4(),
                at=at(i // 3),  # three events share each timestamp: (at, id) breaks the ties
                actor=actors[i % 3],
                action=actions[i % 3],
                result=AuditResult.DENIED if i % 4 == 0 else AuditResult.SUCCESS,
                module="global.payroll" if i % 2 else None,
                target=f"employees.col{i}" if i % 5 else None,
                reason="MAP_REJECTED" if i % 4 == 0 else None,
                details={"i": i, "nested": {"list": [1, "two", None]}, "ok": True},
                count=i + 1,
            )
        )
    return events


def ordered(events: list[AuditEvent]) -> list[AuditEvent]:
    return sorted(events, key=lambda e: (e.at, e.id))


async def test_audit_append_and_query(uow_factory: SqlaUnitOfWorkFactory) -> None:
    events = make_events()
    async with uow_factory() as uow:
        await uow.audit.append(events[:5])
        await uow.audit.append(events[5:])
        await uow.audit.append([])
        await uow.commit()

    async def query(**kwargs: Any) -> list[AuditEvent]:
        async with uow_factory() as uow:
            return list(await uow.audit.query(AuditQuery(**kwargs)))

    everything = await query()
    assert everything == ordered(events)
    for event in everything:
        assert_utc(event.at)
    assert await query(actor="bob") == ordered([e for e in events if e.actor == "bob"])
    assert await query(action="kek.rotate") == ordered(
        [e for e in events if e.action == "kek.rotate"]
    )
    assert await query(module="global.payroll") == ordered(
        [e for e in events if e.module == "global.payroll"]
    )
    assert await query(result="denied") == ordered(
        [e for e in events if e.result is AuditResult.DENIED]
    )
    assert await query(since=at(1), until=at(3)) == ordered(
        [e for e in events if at(1) <= e.at < at(3)]
    )
    assert await query(actor="alice", result="success", since=at(1)) == ordered(
        [
            e
            for e in events
            if e.actor == "alice" and e.result is AuditResult.SUCCESS and e.at >= at(1)
        ]
    )
    assert await query(limit=4) == ordered(events)[:4]
    assert await query(actor="nobody") == []


async def test_audit_cursor_pagination(uow_factory: SqlaUnitOfWorkFactory) -> None:
    events = make_events()
    async with uow_factory() as uow:
        await uow.audit.append(events)
        await uow.commit()

    async def pages(**filters: Any) -> list[list[AuditEvent]]:
        result: list[list[AuditEvent]] = []
        cursor = None
        while True:
            async with uow_factory() as uow:
                page = list(await uow.audit.query(AuditQuery(after=cursor, limit=5, **filters)))
            if not page:
                return result
            result.append(page)
            cursor = (page[-1].at, page[-1].id)

    all_pages = await pages()
    assert [len(p) for p in all_pages] == [5, 5, 2]
    assert [e for p in all_pages for e in p] == ordered(events)

    with_module = await pages(module="global.payroll")
    expected = ordered([e for e in events if e.module == "global.payroll"])
    assert [e for p in with_module for e in p] == expected
    assert [len(p) for p in with_module] == [5, 1]


async def test_audit_events_cannot_change(db_engine: AsyncEngine) -> None:
    events = make_events()[:2]
    async with uow_factory_for(db_engine)() as uow:
        await uow.audit.append(events)
        await uow.commit()

    for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        async with db_engine.connect() as conn:
            with pytest.raises(IntegrityError, match="append-only"):
                await conn.execute(text(statement))
    if db_engine.dialect.name == "postgresql":
        async with db_engine.connect() as conn:
            with pytest.raises(IntegrityError, match="append-only"):
                await conn.execute(text("TRUNCATE audit_events"))

    async with uow_factory_for(db_engine)() as uow:
        assert await uow.audit.query(AuditQuery()) == ordered(events)


# --- unit of work -----------------------------------------------------------------------------


async def test_exception_rolls_back(uow_factory: SqlaUnitOfWorkFactory) -> None:
    module = make_module()
    with pytest.raises(RuntimeError, match="boom"):
        async with uow_factory() as uow:
            await uow.modules.add(module)
            await uow.keys.add(make_key(module.id))
            await uow.audit.append(make_events()[:1])
            raise RuntimeError("boom")

    async with uow_factory() as uow:
        assert await uow.modules.list() == []
        assert await uow.keys.list_all() == []
        assert await uow.audit.query(AuditQuery()) == []


async def test_only_committed_work_survives(uow_factory: SqlaUnitOfWorkFactory) -> None:
    kept, dropped, after_commit = (
        make_module("a.kept"),
        make_module("b.dropped"),
        make_module("c.late"),
    )
    async with uow_factory() as uow:
        await uow.modules.add(dropped)
        await uow.rollback()
        await uow.modules.add(kept)
        await uow.commit()
        await uow.modules.add(after_commit)  # never committed
    async with uow_factory() as uow:
        await uow.modules.add(make_module("d.uncommitted"))

    async with uow_factory() as uow:
        assert [m.name for m in await uow.modules.list()] == ["a.kept"]


async def test_concurrent_units_of_work_queue_instead_of_failing(
    uow_factory: SqlaUnitOfWorkFactory,
) -> None:
    """Read-then-write transactions in parallel (an admin call racing the audit flush)."""
    module = await add_module(uow_factory)
    async with uow_factory() as uow:
        await uow.keys.add(make_key(module.id))
        await uow.commit()

    async def admin(i: int) -> None:
        async with uow_factory() as uow:
            await uow.modules.list()
            await asyncio.sleep(0.01)  # let the others read and write meanwhile
            await uow.modules.add(make_module(f"global.m{i}"))
            await uow.commit()

    async def flush(i: int) -> None:
        async with uow_factory() as uow:
            await uow.audit.append(make_events()[i : i + 1])
            await uow.keys.add_usage({(module.id, 1): 1})
            await uow.commit()

    await asyncio.gather(*(admin(i) for i in range(6)), *(flush(i) for i in range(6)))
    async with uow_factory() as uow:
        assert len(await uow.modules.list()) == 7
        key = await uow.keys.get(module.id, 1)
        assert key is not None and key.encryption_count == 7 + 6


async def test_unit_of_work_outside_its_block(uow_factory: SqlaUnitOfWorkFactory) -> None:
    uow = uow_factory()
    with pytest.raises(RuntimeError):
        await uow.commit()
    async with uow:
        with pytest.raises(RuntimeError):
            await uow.__aenter__()
    async with uow:  # reusable, one transaction per block
        assert await uow.modules.list() == []


async def test_unreachable_database_is_service_unavailable(tmp_path: Any) -> None:
    (tmp_path / "a-directory.db").mkdir()
    for url in (
        "postgresql://postgres@127.0.0.1:1/nothing",
        f"sqlite:///{tmp_path / 'a-directory.db'}",
    ):
        engine = create_engine(url)
        try:
            with pytest.raises(ServiceUnavailable) as err:
                async with SqlaUnitOfWork(engine) as uow:
                    await uow.modules.list()
        finally:
            await engine.dispose()
        assert err.value.reason is Reason.DATABASE_UNAVAILABLE
        assert "SELECT" not in str(err.value) and "nothing" not in str(err.value)
        assert err.value.__cause__ is not None
    await _aiosqlite_threads_finished()


async def _aiosqlite_threads_finished() -> None:
    """After a failed connect aiosqlite stops its worker thread without waiting for it; the
    thread then reports to the event loop, which must still be open (else a thread warning)."""
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(thread.join, 5)


@pytest.mark.postgres
async def test_connection_lost_mid_transaction(pg_url: str, postgres_admin_url: str) -> None:
    engine = create_engine(pg_url)
    secret = b"wrapped-dek-bytes"
    try:
        with pytest.raises(ServiceUnavailable) as err:
            async with SqlaUnitOfWork(engine) as uow:
                module = make_module()
                await uow.modules.add(module)
                await _terminate_backends(postgres_admin_url, engine.url.database)
                await uow.keys.add(make_key(module.id, wrapped_dek=secret))
        assert err.value.reason is Reason.DATABASE_UNAVAILABLE
        assert "INSERT" not in str(err.value)
        assert secret.decode() not in repr(err.value.__cause__)  # hide_parameters
        async with SqlaUnitOfWork(engine) as uow:  # the pool recovers
            assert await uow.modules.list() == []
    finally:
        await engine.dispose()


async def _terminate_backends(admin_url: str, database: str | None) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()


async def test_dump_all_tables_sees_binary_columns(
    uow_factory: SqlaUnitOfWorkFactory, db_engine: AsyncEngine
) -> None:
    module = make_module()
    ekek = make_ekek()
    key = make_key(module.id, kek_id=ekek.id)
    async with uow_factory() as uow:
        await uow.modules.add(module)
        await uow.instance_keys.add(ekek)
        await uow.keys.add(key)
        await uow.commit()
    dump = await dump_all_tables(db_engine)
    assert key.wrapped_dek is not None and key.wrapped_dek in dump
    assert ekek.wrapped_kek in dump
    assert module.name.encode() in dump
    assert b"== alembic_version" in dump
