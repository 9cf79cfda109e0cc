"""Several nodes on one MongoDB (NODE_URL set): membership and leases (`node`), rendezvous
hashing (`rendezvous`), forwarding to an instance's owner (`forward`), what nodes sign
(`signing`), and what they keep in the database (`store`; MongoDB's is in the storage
provider). `wiring` builds this node from the settings and wires it to the server.
"""
