"""``im2im plan``: a dataset's fingerprint becomes a config that trains well without tuning.

:func:`~im2im_core.planning.fingerprint.fingerprint` reads the data, :func:`~im2im_core.planning.plan.make_plan`
applies the rules (:mod:`~im2im_core.planning.rules`, batch size by trial steps in
:mod:`~im2im_core.planning.trial`), and :func:`~im2im_core.planning.search.search` compares variants
by k-fold cross-validation.
"""
