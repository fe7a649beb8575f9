"""The commands: one module each, registered in ``main``. Nothing outside this part imports it."""
