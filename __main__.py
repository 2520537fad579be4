"""The Pulumi program: build the blueprint the selected stack's file names (stacks/Pulumi.<stack>.yaml)."""

from blueprints.registry import deploy

deploy()
