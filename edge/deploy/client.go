package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Result is one device's answer to an upload.
type Result struct {
	Device string `json:"device"`
	OK     bool   `json:"ok"`
	// Code is the HTTP status; 0 when the device could not be reached.
	Code     int    `json:"code"`
	Version  string `json:"version,omitempty"`
	Previous string `json:"previous,omitempty"`
	Stage    string `json:"stage,omitempty"`
	// Message is the reason of a refusal, as the device gave it.
	Message string  `json:"message,omitempty"`
	Seconds float64 `json:"seconds"`
}

// ModelURL is the /api/model address of a device given as a base URL
// ("http://cam1:8080", "cam1:8080") or as the endpoint itself.
func ModelURL(device string) (string, error) {
	s := strings.TrimSpace(device)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("device %q: want a URL such as http://cam1:8080", device)
	}
	if !strings.HasSuffix(u.Path, "/api/model") {
		u.Path = strings.TrimRight(u.Path, "/") + "/api/model"
	}
	return u.String(), nil
}

// Upload sends the bundle file's bytes to a device's POST /api/model with
// the bearer token, and reads its answer. It never fails: an unreachable
// device is a Result with code 0 and the reason.
func Upload(ctx context.Context, client *http.Client, device, token string,
	data []byte) (res Result) {
	start := time.Now()
	res.Device = device
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	endpoint, err := ModelURL(device)
	if err != nil {
		res.Message = err.Error()
		return res
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint,
		bytes.NewReader(data))
	if err != nil {
		res.Message = err.Error()
		return res
	}
	sum := sha256.Sum256(data)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(SHA256Header, hex.EncodeToString(sum[:]))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		res.Message = fmt.Sprintf("unreachable: %v", err)
		return res
	}
	defer resp.Body.Close()
	res.Code = resp.StatusCode
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out Outcome
	if json.Unmarshal(body, &out) == nil && (out.Code != 0 || out.OK) {
		res.OK = out.OK && resp.StatusCode == http.StatusOK
		res.Version, res.Previous, res.Stage, res.Message = out.Version, out.Previous,
			out.Stage, out.Error
		return res
	}
	res.Message = strings.TrimSpace(string(body))
	if resp.StatusCode == http.StatusRequestEntityTooLarge {
		res.Stage = StageSize // refused by the server before the deployer saw it
	}
	if resp.StatusCode == http.StatusNotFound {
		res.Message = "no /api/model here: is it a maskwatch that takes deployments?"
	}
	return res
}
