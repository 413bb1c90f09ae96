"""The ``skyguard`` command line, at the top of the layout: it composes the others (mocks and
training, experiments, batch scoring, serving) and nothing imports it."""
