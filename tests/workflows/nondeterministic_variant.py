"""A careless change to ResearchWorkflow, for proving the replay gate fails: a new timer before
planning that is not behind workflow.patched()."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from deepsci.contracts import ResearchRequest, ResearchResult
    from workflows.research import ResearchWorkflow


@workflow.defn(name="ResearchWorkflow")
class ResearchWorkflowWithExtraStep(ResearchWorkflow):
    @workflow.run
    async def run(self, req: ResearchRequest) -> ResearchResult:
        await workflow.sleep(1)
        return await super().run(req)
