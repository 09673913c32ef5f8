package controllers_test

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

type corev1Namespace struct{ corev1.Namespace }

func (n *corev1Namespace) obj() *corev1.Namespace { return &n.Namespace }

func jsonParams(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }
