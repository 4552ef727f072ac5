"""Keras training recipes and data loaders that produce the models the apps run.

Will hold small, reproducible recipes (image classification, keyword spotting, control
policies) and loaders for the offline data sets listed in the project's assets.
"""
