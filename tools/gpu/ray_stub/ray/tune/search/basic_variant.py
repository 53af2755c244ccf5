"""``ray.tune.search.basic_variant`` of the stand-in (see ray/__init__.py).

neuralforecast builds one ``BasicVariantGenerator(random_state=1)`` as a default argument when it is imported, so
this one can be built; it holds its arguments and does nothing else.
"""


class BasicVariantGenerator:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
