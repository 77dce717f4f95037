"""Every read model of the service, by name: what the workers run and the CLI names."""

from __future__ import annotations

from infrastructure.eventstore import read_model_datastore
from infrastructure.settings import Settings
from projections.accounts import AccountsModel
from projections.appointments import AppointmentsModel
from projections.base import PoisonPolicy, ReadModel, read_model_schema
from projections.billing import BillingModel
from projections.conversations import ConversationsModel
from projections.duplicates import DuplicatesModel
from projections.files import FilesModel
from projections.history import HistoryModel
from projections.pets import PetsModel
from projections.search import SearchModel
from projections.tickets import TicketsModel

__all__ = ["READ_MODELS", "open_read_model"]

READ_MODELS: dict[str, type[ReadModel]] = {
    "search": SearchModel,
    "appointments": AppointmentsModel,
    "tickets": TicketsModel,
    "history": HistoryModel,
    "pets": PetsModel,
    "conversations": ConversationsModel,
    "files": FilesModel,
    "accounts": AccountsModel,
    "duplicates": DuplicatesModel,
    "billing": BillingModel,
}
"""One line per read model, e.g. `"search": SearchModel`."""


def open_read_model(
    settings: Settings, name: str, *, schema: str | None = None, poison: PoisonPolicy | None = None
) -> ReadModel:
    """The read model `name` on its schema (or on `schema`, for a rebuild's fresh one)."""
    model_class = READ_MODELS[name]
    datastore = read_model_datastore(
        settings, schema or read_model_schema(settings.db_schema, name)
    )
    return model_class(datastore, poison=poison)
