"""The tk970 MQTT gateway: the integration's listener on a public host, feeding Home Assistant
through an MQTT broker (`scripts/gateway`, interfaces.md §5).

It runs the protocol core and the listener of `custom_components.tk970` without Home Assistant,
and publishes each allowed tracker as a Home Assistant MQTT discovery device. Modules:

- `app`: the gateway (allow-list, which trackers this instance holds, relay commands, alarms)
- `tracker`: one tracker's state and the state JSON
- `discovery`: Home Assistant discovery payloads
- `topics`: the topic layout
- `outbox`: the ordered, bounded queue of publications
- `broker`: the MQTT connection (aiomqtt), reconnects
- `positioning`: where fix-less reports get a fallback position
- `__main__`: the command line
"""

__version__ = "0.1.0"
