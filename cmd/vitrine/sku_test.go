package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestSKU: a product's SKU is unique per owner (409 on a clash), optional,
// and validated like every field.
func TestSKU(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	a := app.createProduct(`{"name":"Chair","price":"10","user_id":1,"sku":"  CH-1  "}`)
	if a["sku"] != "CH-1" {
		t.Errorf("sku %v, want CH-1 (trimmed)", a["sku"])
	}
	if b := app.createProduct(`{"name":"Chair","price":"10","user_id":2,"sku":"CH-1"}`); b["sku"] != "CH-1" {
		t.Errorf("another owner's CH-1: %v", b["sku"])
	}
	pr := expectProblem(t, app.doJSON("POST", "/products", `{"name":"Stool","price":"10","user_id":1,"sku":"CH-1"}`), http.StatusConflict, "a taken SKU")
	if pr["code"] != "sku_taken" {
		t.Errorf("a taken SKU: code %v", pr["code"])
	}
	c := app.createProduct(`{"name":"Stool","price":"10","user_id":1}`)
	if _, ok := c["sku"]; ok {
		t.Errorf("a product without a SKU renders one: %v", c["sku"])
	}
	patch := func(id, body string) response {
		return app.do("PATCH", "/products/"+id, strings.NewReader(body), "Content-Type", "application/merge-patch+json")
	}
	expectProblem(t, patch(c["id"].(string), `{"sku":"CH-1"}`), http.StatusConflict, "patch to a taken SKU")
	if r := patch(c["id"].(string), `{"sku":"ST-1"}`); r.Status != http.StatusOK || r.json(t)["sku"] != "ST-1" {
		t.Errorf("patch the SKU: %d %s", r.Status, r.Body)
	}
	if r := patch(c["id"].(string), `{"sku":null}`); r.Status != http.StatusOK || r.json(t)["sku"] != nil {
		t.Errorf("clear the SKU: %d %s", r.Status, r.Body)
	}
	for name, sku := range map[string]string{"empty": `""`, "spaces": `"   "`, "65 characters": `"` + strings.Repeat("x", 65) + `"`,
		"a control character": `"a\u0000b"`, "a line break": `"a\nb"`, "a number": `12`} {
		expectProblem(t, app.doJSON("POST", "/products", `{"name":"x","price":"1","user_id":1,"sku":`+sku+`}`), http.StatusBadRequest, "a SKU "+name)
	}
}
