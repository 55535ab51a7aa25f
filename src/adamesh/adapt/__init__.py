"""Personalisation from a short reference: the expression model adapted (`expression`, with the
lip-timing term in `timing`) and the pose style retrieved (`pose`). What it makes is a `profile.Profile`."""
