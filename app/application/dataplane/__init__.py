"""The machinery behind ``app.application.crypto.CryptoService``, one job per module.

- ``items``: what a call carries in (``Item``) and gets back (``ItemResult``).
- ``item_path``: every check for one item, in order; the one definition of the behaviour. It
  returns what it built: the item's result and, on success, a permit.
- ``permits``: what a caller's item found once it passed every check for one kind of item
  (operation, target and, to open, the ciphertext header): the data key, the binding, the
  nonce lease, how a success is audited. Later items of that kind are served from it.
- ``shortcut``: the batch loop (every item is served from a permit when one fits, else goes
  through the item path), and the permits kept per caller for one snapshot.
- ``columns``: the same loop for a batch held as columns (data, contexts, targets): a permit
  serves a whole run of items in one call to the domain (``DataKey.open_many``/``seal_many``),
  and only what it leaves goes item by item. Results come back as columns too.
"""
