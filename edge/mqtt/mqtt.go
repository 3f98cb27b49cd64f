// Package mqtt publishes maskwatch's events to an MQTT broker. It holds a
// small MQTT 3.1.1 client of its own (CONNECT, PUBLISH at QoS 0 or 1,
// PINGREQ, DISCONNECT; no subscriptions, no QoS 2, no will message) and a
// Publisher that reconnects with backoff and retries, away from the pipeline.
package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Packet types of MQTT 3.1.1 that this client sends or reads.
const (
	typeConnect    = 1
	typeConnAck    = 2
	typePublish    = 3
	typePubAck     = 4
	typePingReq    = 12
	typePingResp   = 13
	typeDisconnect = 14
)

// Config says where and how to publish.
type Config struct {
	// URL is mqtt://[user:password@]host[:1883] or mqtts://...[:8883].
	URL string
	// ClientID identifies this device to the broker; it should be unique.
	ClientID string
	// QoS is 0 (at most once) or 1 (at least once: the broker acknowledges).
	QoS byte
	// KeepAlive is the longest silence before a ping; 0 means 30 s.
	KeepAlive time.Duration
	// Timeout bounds connecting and each exchange; 0 means 10 s.
	Timeout time.Duration
	// TLS configures mqtts:// connections; nil means the system's roots.
	TLS *tls.Config
}

type endpoint struct {
	addr     string
	tls      bool
	user     string
	password string
	hasUser  bool
	hasPass  bool
}

// parseURL checks the broker URL and returns where to connect.
func parseURL(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("mqtt url: %w", err)
	}
	var ep endpoint
	port := "1883"
	switch u.Scheme {
	case "mqtt", "tcp":
	case "mqtts", "ssl", "tls":
		ep.tls, port = true, "8883"
	default:
		return endpoint{}, fmt.Errorf("mqtt url %q: scheme must be mqtt:// or mqtts://",
			u.Redacted())
	}
	if u.Hostname() == "" {
		return endpoint{}, fmt.Errorf("mqtt url %q: no broker host", u.Redacted())
	}
	if u.Port() != "" {
		port = u.Port()
	}
	ep.addr = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		ep.user, ep.hasUser = u.User.Username(), true
		ep.password, ep.hasPass = u.User.Password()
	}
	return ep, nil
}

// Conn is one connection to a broker. Not safe for concurrent use.
type Conn struct {
	c       net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	timeout time.Duration
	nextID  uint16
	buf     []byte
}

// Dial connects and sends CONNECT with a clean session; it returns once
// the broker has accepted.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	ep, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	keep := cfg.KeepAlive
	if keep <= 0 {
		keep = 30 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	var nc net.Conn
	if ep.tls {
		tc := cfg.TLS
		if tc == nil {
			host, _, _ := net.SplitHostPort(ep.addr)
			tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		nc, err = (&tls.Dialer{NetDialer: &d, Config: tc}).DialContext(ctx, "tcp", ep.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", ep.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("mqtt connect %s: %w", ep.addr, err)
	}
	c := &Conn{c: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc), timeout: timeout}
	if err := c.connect(cfg.ClientID, ep, keep); err != nil {
		nc.Close()
		return nil, fmt.Errorf("mqtt connect %s: %w", ep.addr, err)
	}
	return c, nil
}

// connectPacket builds CONNECT: protocol "MQTT" level 4, clean session.
func connectPacket(clientID string, ep endpoint, keep time.Duration) []byte {
	var vh []byte
	vh = appendString(vh, "MQTT")
	flags := byte(0x02) // clean session
	if ep.hasUser {
		flags |= 0x80
	}
	if ep.hasPass {
		flags |= 0x40
	}
	vh = append(vh, 4, flags)
	vh = binary.BigEndian.AppendUint16(vh, uint16(min(keep/time.Second, 65535)))
	vh = appendString(vh, clientID)
	if ep.hasUser {
		vh = appendString(vh, ep.user)
	}
	if ep.hasPass {
		vh = appendString(vh, ep.password)
	}
	return appendPacket(nil, typeConnect<<4, vh)
}

func (c *Conn) connect(clientID string, ep endpoint, keep time.Duration) error {
	if err := c.write(connectPacket(clientID, ep, keep)); err != nil {
		return err
	}
	typ, body, err := c.read()
	if err != nil {
		return err
	}
	if typ != typeConnAck || len(body) != 2 {
		return fmt.Errorf("broker answered packet type %d, want CONNACK", typ)
	}
	if code := body[1]; code != 0 {
		return fmt.Errorf("broker refused the connection: %s", connAckReason(code))
	}
	return nil
}

func connAckReason(code byte) string {
	switch code {
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "client id rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorised"
	}
	return "return code " + strconv.Itoa(int(code))
}

// Publish sends payload to topic. At QoS 1 it waits for the broker's PUBACK.
func (c *Conn) Publish(topic string, payload []byte, qos byte) error {
	if qos > 1 {
		return fmt.Errorf("mqtt publish: qos %d: only 0 and 1 are supported", qos)
	}
	if topic == "" {
		return errors.New("mqtt publish: empty topic")
	}
	vh := appendString(c.buf[:0], topic)
	var id uint16
	if qos == 1 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		id = c.nextID
		vh = binary.BigEndian.AppendUint16(vh, id)
	}
	vh = append(vh, payload...)
	c.buf = vh
	if err := c.write(appendPacket(nil, typePublish<<4|qos<<1, vh)); err != nil {
		return err
	}
	if qos == 0 {
		return nil
	}
	for {
		typ, body, err := c.read()
		if err != nil {
			return err
		}
		if typ == typePubAck && len(body) == 2 && binary.BigEndian.Uint16(body) == id {
			return nil
		}
	}
}

// Ping sends PINGREQ and waits for PINGRESP.
func (c *Conn) Ping() error {
	if err := c.write([]byte{typePingReq << 4, 0}); err != nil {
		return err
	}
	for {
		typ, _, err := c.read()
		if err != nil {
			return err
		}
		if typ == typePingResp {
			return nil
		}
	}
}

// Close sends DISCONNECT and closes the connection.
func (c *Conn) Close() error {
	c.write([]byte{typeDisconnect << 4, 0})
	return c.c.Close()
}

func (c *Conn) write(p []byte) error {
	c.c.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := c.bw.Write(p); err != nil {
		return fmt.Errorf("mqtt write: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("mqtt write: %w", err)
	}
	return nil
}

// maxIncoming bounds a packet from the broker; this client expects only
// short acknowledgements.
const maxIncoming = 1 << 16

// read returns the next packet's type and body.
func (c *Conn) read() (byte, []byte, error) {
	c.c.SetReadDeadline(time.Now().Add(c.timeout))
	h, err := c.br.ReadByte()
	if err != nil {
		return 0, nil, fmt.Errorf("mqtt read: %w", err)
	}
	n, err := readLength(c.br)
	if err != nil {
		return 0, nil, fmt.Errorf("mqtt read: %w", err)
	}
	if n > maxIncoming {
		return 0, nil, fmt.Errorf("mqtt read: packet of %d bytes from the broker", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return 0, nil, fmt.Errorf("mqtt read: %w", err)
	}
	return h >> 4, body, nil
}

// appendPacket appends a fixed header (first byte and remaining length) and body.
func appendPacket(dst []byte, first byte, body []byte) []byte {
	dst = append(dst, first)
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if n == 0 {
			break
		}
	}
	return append(dst, body...)
}

func readLength(br *bufio.Reader) (int, error) {
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			return n, nil
		}
		mul *= 128
	}
	return 0, errors.New("malformed remaining length")
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}
