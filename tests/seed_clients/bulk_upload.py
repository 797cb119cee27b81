import requests
files = [
('files', open('image1.jpg', 'rb')),
('files', open('image2.png', 'rb')),
('files', open('image3.gif', 'rb'))
]
response = requests.post(
'https://imglink.io/api/v1/upload/bulk',
headers={'Authorization': 'Bearer YOUR_API_KEY'},
files=files
)
print(response.json())
