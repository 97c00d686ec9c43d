"""The pages hallq serves itself: lobby display, kiosk, clerk console and manager dashboard."""
