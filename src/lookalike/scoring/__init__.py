"""How a saved model scores embeddings, shared by training and serving (numpy only).

* ``heads`` — the heads as saved and restored (``predict_proba`` over their arrays), the
  class aggregator, and the registry of head kinds a model may name;
* ``resemblance`` — lookalike scores, their strength and the tie rule.

Fitting a head lives in ``lookalike.training.heads``; nothing here imports scikit-learn,
torch or the training pipeline, so loading a model (``lookalike.artifacts``) does not either.
"""
