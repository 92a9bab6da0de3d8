"""Buttons: "Locate now" (a position request) and "Clear SOS".

Both go through the coordinator's command path, as the actions do. "Locate now" exists for
families that have a position request (not H02) and is available while the tracker can be
reached; "Clear SOS" always is, since the alarm can be cleared here while the tracker is away
(a connected tracker whose protocol acknowledges SOS is answered first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import INFO, LINK, TK970ConfigEntry, TrackerCoordinator
from .entity import TK970Entity
from .protocol import Command, CommandKind
from .protocol.commands import supports

# Each press waits for its own tracker's answer; presses on different trackers do not queue.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class TK970ButtonDescription(ButtonEntityDescription):
    """A button that sends one command (or clears one state) of the tracker."""

    press_fn: Callable[[TrackerCoordinator], Awaitable[object]]
    #: the command the tracker's family must have for the button to exist and work; None: any
    command: CommandKind | None = None


BUTTONS: tuple[TK970ButtonDescription, ...] = (
    TK970ButtonDescription(
        key="locate",
        translation_key="locate",
        command=CommandKind.LOCATE,
        press_fn=lambda coordinator: coordinator.async_send_command(
            Command(kind=CommandKind.LOCATE)
        ),
    ),
    TK970ButtonDescription(
        key="clear_sos",
        translation_key="clear_sos",
        press_fn=lambda coordinator: coordinator.async_clear_sos(),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TK970ConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the buttons the tracker's family has (all of them while its family is unknown)."""
    coordinator = entry.runtime_data
    protocol = coordinator.data.protocol
    async_add_entities(
        TK970Button(coordinator, description)
        for description in BUTTONS
        if description.command is None
        or protocol is None
        or supports(protocol, description.command)
    )


class TK970Button(TK970Entity, ButtonEntity):
    """A button of the tracker."""

    entity_description: TK970ButtonDescription

    def __init__(
        self, coordinator: TrackerCoordinator, description: TK970ButtonDescription
    ) -> None:
        """Bind the description to the tracker."""
        super().__init__(coordinator, description=description, aspects=(LINK, INFO))

    @property
    def available(self) -> bool:
        """A command button only while the tracker is connected and its family has the
        command; a button without a command always."""
        command = self.entity_description.command
        if command is None:
            return super().available
        link = self.coordinator.link
        return super().available and link is not None and supports(link.protocol, command)

    async def async_press(self) -> None:
        """Send the command (or clear the state); an error names what went wrong."""
        await self.entity_description.press_fn(self.coordinator)
