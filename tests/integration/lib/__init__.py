"""Integration-test library for sluice: the proxy process, scripted origins,
a fake DNS server, a TLS origin and a raw client. Standard library only."""
