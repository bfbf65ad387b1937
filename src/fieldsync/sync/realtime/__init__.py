"""Realtime: pokes to connected clients (SSE and WebSocket) when their scope changed."""
