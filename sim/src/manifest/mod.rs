//! Istio / Gateway API manifests meshsim models. (Filled in by the scenario work.)
