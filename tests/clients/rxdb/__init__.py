"""Helpers of the RxDB tests (the Node programs live here too)."""
