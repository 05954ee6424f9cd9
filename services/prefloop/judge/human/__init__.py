"""The human judge (``judge.kind: human``): people label the pairs the acquisition rule picked.

- :mod:`~prefloop.judge.human.queue`: the durable label queue (an fsynced event log in the run
  directory), votes per annotator, undo, carry and drop;
- :mod:`~prefloop.judge.human.judge`: :class:`HumanJudge`, whose ``judge()`` waits for the
  majority vote of ``annotatorsPerPair`` people, and the round's agreement;
- :mod:`~prefloop.judge.human.agreement`: Cohen's and Fleiss' kappa;
- :mod:`~prefloop.judge.human.render`: untrusted Markdown to safe HTML;
- :mod:`~prefloop.judge.human.app`: the FastAPI page (token login, CSRF, strict CSP);
- :mod:`~prefloop.judge.human.server`: ``prefloop judge-ui``, the run with its page.

Service mode (the judge service serving the page, answering Judge when the labels are in,
publishing votes to Kafka) is :mod:`prefloop.rpc.human_judge_service`.

The web modules import FastAPI (extra ``human``); this package's ``__init__`` imports nothing.
"""
