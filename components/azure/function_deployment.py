"""Publishing a package to a Flex Consumption app with OneDeploy, as Microsoft documents it.

Contract (learn.microsoft.com/azure/azure-functions/functions-infrastructure-as-code, Flex Consumption
pivot, "Deployment sources" and "Deployment package"; flex-consumption-plan#deployment):

- The app keeps its code as a zip in the *deployment container* named by
  ``functionAppConfig.deployment.storage`` and loads it at startup; the blob is ``released-package.zip``.
- "You must use one deploy to publish your code package to the deployment container ... If you choose to
  instead directly upload your package to the container, the package isn't automatically deployed."
  OneDeploy writes the blob *as the app's identity*, syncs the triggers and restarts the app.

Why not a ``storage.Blob`` upload: besides the above, azure-native's ``Blob`` writes with the account's
shared key (pulumi/pulumi-azure-native#3719; #2015 is still open), which the hardened account refuses.
Why not the ``Microsoft.Web/sites/extensions/onedeploy`` ARM resource: it needs a ``packageUri`` the host
can download, i.e. a SAS, and SAS tokens need shared keys too.

So the package is published with the Azure CLI (``az functionapp deployment source config-zip``, the
OneDeploy client Microsoft recommends for Flex, authenticated with the deployer's Entra login, not
publishing credentials) as a ``command:local:Command`` that re-runs whenever the package hash changes.
The first publish can meet a ``BlobUploadFailedException`` (403) while the app's new storage role
propagates, so the command retries for a few minutes before failing the deployment.

Private apps (isolated stages). The CLI talks to the app's deployment host, ``<app>.scm.azurewebsites.net``;
with the app's public network access off, that host answers only through the app's private endpoint. So
``pulumi up`` must run where that name resolves to the endpoint's private address: a self-hosted CI
runner or jump host in the VNet, or in a network peered with it whose DNS uses the
``privatelink.azurewebsites.net`` zone. From anywhere else the publish fails (403 or a timeout) and so
does the deployment, with a message saying why; there is no way around it short of opening the app. The
app then writes the package into its deployment container over its VNet integration and the storage
account's blob private endpoint, which ``ServerlessAgent`` creates before publishing.
"""

from __future__ import annotations

import pulumi
from pulumi_command import local

from components.packaging import Package

ATTEMPTS = 6
RETRY_SECONDS = 30

PUBLISH_SCRIPT = f"""\
attempt=1
until az functionapp deployment source config-zip --resource-group "$RESOURCE_GROUP" --name "$APP_NAME" \\
    --src "$PACKAGE_PATH" --build-remote false --only-show-errors; do
  if [ "$attempt" -ge {ATTEMPTS} ]; then
    if [ -n "$PRIVATE_APP_HINT" ]; then echo "$PRIVATE_APP_HINT" >&2; fi
    exit 1
  fi
  echo "publish attempt $attempt failed; retrying in {RETRY_SECONDS}s (the app's storage role may still be propagating)" >&2
  attempt=$((attempt + 1))
  sleep {RETRY_SECONDS}
done
"""

PRIVATE_APP_HINT = (
    "the app accepts deployments only through its private endpoint: run this deployment from inside its "
    "virtual network (a self-hosted runner or jump host) where <app>.scm.azurewebsites.net resolves through "
    "the privatelink.azurewebsites.net zone"
)


def publish_package(
    name: str,
    *,
    package: Package,
    app_name: pulumi.Input[str],
    resource_group_name: pulumi.Input[str],
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource],
    private: bool = False,
) -> local.Command:
    """OneDeploy ``package`` to the app; re-run whenever the package's content (its sha256) changes.

    ``private``: the app has no public access, so a final failure also says where publishing must run.
    """
    return local.Command(
        f"{name}-publish",
        create=PUBLISH_SCRIPT,
        environment={
            "RESOURCE_GROUP": resource_group_name,
            "APP_NAME": app_name,
            "PACKAGE_PATH": str(package.path),
            **({"PRIVATE_APP_HINT": PRIVATE_APP_HINT} if private else {}),
        },
        triggers=[package.sha256],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
