"""The external key store (XKS Proxy API v1): the proxy's use cases (``proxy``), the request
bodies as the specification defines them (``messages``), the in-memory directory of stores
and keys the proxy serves from (``directory``), and the admin use cases (``admin``)."""
