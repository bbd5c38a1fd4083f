"""The bots' input: the dead-man's switch receiver (HTTP heartbeats) and the last heartbeat per bot.

receiver.py = the bounded HTTP listener; registry.py = last heartbeat per bot, persisted in the
state dir; ping.py = the client side (`ibkr-watchdog ping`). The rules read the registry's
statuses through the Snapshot (`bot_silence`); nothing here fires a kill.
"""
