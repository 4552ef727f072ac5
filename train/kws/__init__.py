"""Keyword spotting: ``edgepilot train kws`` (:func:`train.kws.recipe.train_kws`)."""
