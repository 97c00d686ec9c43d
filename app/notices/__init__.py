"""Notices (公告): the lobby ticker's and the kiosk's words, each current between two instants."""
