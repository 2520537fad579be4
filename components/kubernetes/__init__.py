"""Cloud-agnostic Kubernetes building blocks for agents: they work with any ``pulumi_kubernetes.Provider``.

The same namespace and workload blocks run on AKS (provider from the cluster's credentials), EKS or a
cluster the user brings (provider from its kubeconfig). Cloud specifics enter only as data: the service
account's identity annotations (:mod:`components.kubernetes.identity`) and the queue a KEDA trigger reads
(:mod:`components.kubernetes.scaling`).
"""
